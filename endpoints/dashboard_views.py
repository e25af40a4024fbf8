"""The coordinator and data manager dashboards. Roles are checked here; what is shown comes from
`dashboards`, over the patients the user may see."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from trial.roles import Role
from trial.services.access import patients_visible_to

from . import dashboards
from .pages import trial_for


@login_required
def coordinator(request):
    trial = trial_for(request.user, Role.COORDINATOR, Role.DATA_MANAGER)
    patients = patients_visible_to(request.user)
    rows = dashboards.case_rows(trial, patients, timezone.now())
    context = {
        "trial": trial,
        "accrual": dashboards.accrual(trial, patients),
        "rows": rows,
        "overdue_count": sum(row.overdue for row in rows),
    }
    return render(request, "endpoints/coordinator_dashboard.html", context)


@login_required
def data_manager(request):
    trial = trial_for(request.user, Role.DATA_MANAGER)
    context = {"trial": trial, **dashboards.data_manager_items(trial, timezone.now())}
    return render(request, "endpoints/data_manager_dashboard.html", context)
