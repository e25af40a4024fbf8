"""Pages of the panel: the review worklist and the blinded workstation, both by code only; and the data
manager's reassignment of a review (from the data manager dashboard)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from trial.roles import Role, has_role, is_blinded
from trial.services.errors import NotAllowed, NotFound, TrialError

from . import services
from .models import ReviewAssignment


@login_required
def worklist(request):
    try:
        assignments = list(services.assignments_of(request.user))
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from exc
    rows = [{"code": a.case.code, "kind": a.get_kind_display(), "status": services.status_of(a)} for a in assignments]
    return render(request, "panel_review/worklist.html", {"cases": rows})


@login_required
def workstation(request, code):
    try:
        assignment = services.assignment_for(request.user, code)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from exc
    context = {
        "title": assignment.case.code,
        "manifest_url": f"/api/v1/review/cases/{assignment.case.code}/",
        "home_url": "/review/",
        "home_label": "My review cases",
        "csrf_token_value": get_token(request),
    }
    return render(request, "delineation/workstation.html", context)


@login_required
@require_POST
def reassign(request, pk):
    if not has_role(request.user, Role.DATA_MANAGER) or is_blinded(request.user):
        raise PermissionDenied("Only data managers reassign panel reviews.")
    assignment = get_object_or_404(ReviewAssignment.objects.select_related("case"), pk=pk)
    try:
        new = services.withdraw(actor=request.user, assignment=assignment, reason=request.POST.get("reason", ""))
    except TrialError as exc:
        messages.error(request, exc.message)
    else:
        to = ", ".join(a.reviewer.get_full_name() or a.reviewer.get_username() for a in new)
        messages.success(request, f"Review {assignment.case.code} reassigned" + (f" to {to}." if to else
                         "; no other panel member is free yet: it is assigned as soon as one is."))  # fmt: skip
    return redirect("dashboard-data-manager")
