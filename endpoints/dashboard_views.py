"""The coordinator and data manager dashboards. Roles are checked here; what is shown comes from
`dashboards`, over the patients the user may see."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from trial.roles import Role, has_role, is_blinded
from trial.services.access import patients_visible_to
from trial.services.errors import TrialError
from trial.services.trials import default_trial

from . import dashboards


def _trial_for(user, *roles: Role):
    """The open trial, for users holding one of `roles`; the blinded panel never, whatever else they hold."""
    if is_blinded(user) or not has_role(user, *roles):
        raise PermissionDenied("This dashboard is for " + " and ".join(r.value.replace("_", " ") for r in roles) + "s.")
    try:
        return default_trial()
    except TrialError as exc:
        raise Http404(exc.message) from exc


@login_required
def coordinator(request):
    trial = _trial_for(request.user, Role.COORDINATOR, Role.DATA_MANAGER)
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
    trial = _trial_for(request.user, Role.DATA_MANAGER)
    context = {"trial": trial, **dashboards.data_manager_items(trial, timezone.now())}
    return render(request, "endpoints/data_manager_dashboard.html", context)
