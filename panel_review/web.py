"""Pages of the panel: the review worklist and the blinded workstation, both by code only."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import render

from trial.services.errors import NotAllowed, NotFound

from . import services


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
