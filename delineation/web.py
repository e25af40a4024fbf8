"""Pages of the physician: the worklist and the workstation. The page carries only the manifest URL; the
viewer fetches everything through the API, which decides what this user may see."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.utils import timezone

from trial.services.errors import Conflict, NotAllowed, NotFound

from . import services
from .api import worklist_item


def _case(request, pk):
    try:
        return services.case_for(request.user, pk)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except (NotAllowed, Conflict) as exc:  # e.g. not randomised yet: the 403 page shows why
        raise PermissionDenied(exc.message) from exc


@login_required
def worklist(request):
    try:
        services.require_physician(request.user)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from exc
    now = timezone.now()
    items = [worklist_item(patient, now) for patient in services.cases_of(request.user).order_by("trial_number")]
    return render(request, "delineation/worklist.html", {"cases": items})


@login_required
def workstation(request, pk):
    patient = _case(request, pk)
    context = {
        "title": patient.trial_number,
        "manifest_url": f"/api/v1/delineation/cases/{patient.pk}/",
        "home_url": "/delineation/",
        "home_label": "My worklist",
        "csrf_token_value": get_token(request),
    }
    return render(request, "delineation/workstation.html", context)
