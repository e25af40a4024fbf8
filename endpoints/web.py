"""The statisticians' page: endpoint data and interaction events in every format, the lock and the unblinding
(data managers, with their electronic signature). The services decide who may do what."""

import tempfile
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from trial.roles import Role, has_role
from trial.services.errors import TrialError

from . import formats, services
from .models import DataLock, Unblinding
from .pages import trial_for

CONTENT_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "dta": "application/x-stata-dta",
    "sav": "application/x-spss-sav",
    "parquet": "application/vnd.apache.parquet",
}


def _trial(request, *roles):
    return trial_for(request.user, *(roles or services.READERS))


@login_required
def index(request):
    trial = _trial(request)
    context = {
        "trial": trial,
        "formats": formats.FORMATS,
        "lock": DataLock.objects.filter(trial=trial).first(),
        "unblinding": Unblinding.objects.filter(trial=trial).first(),
        "is_data_manager": has_role(request.user, Role.DATA_MANAGER),
    }
    return render(request, "endpoints/index.html", context)


@login_required
def download(request, what, fmt):
    trial = _trial(request)
    if fmt not in formats.FORMATS or what not in ("endpoints", "events", "codebook"):
        raise Http404("No such export.")
    with tempfile.TemporaryDirectory(prefix="export-") as folder:
        data = Path(folder) / f"{trial.protocol_id}-{what}.{fmt}"
        try:
            if what == "events":
                services.export_events(actor=request.user, trial=trial, fmt=fmt, path=data)
            else:
                data = Path(folder) / f"{trial.protocol_id}-endpoints.{fmt}"
                services.export(actor=request.user, trial=trial, fmt=fmt, path=data)
                if what == "codebook":  # written beside the data by services.export
                    data, fmt = Path(folder) / f"{trial.protocol_id}-endpoints-codebook.csv", "csv"
        except TrialError as exc:  # e.g. the sealed data no longer match their hash
            messages.error(request, exc.message)
            return redirect("endpoints-index")
        response = HttpResponse(data.read_bytes(), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{data.name}"'
    return response


@login_required
@require_POST
def lock(request):
    trial = _trial(request, Role.DATA_MANAGER)  # a statistician is refused (403), not sent back with a message
    try:
        data_lock = services.lock(actor=request.user, trial=trial, password=request.POST.get("password", ""))
        messages.success(request, f"The database is locked; the export at lock has sha256 {data_lock.export_sha256}.")
    except TrialError as exc:
        messages.error(request, exc.message)
    return redirect("endpoints-index")


@login_required
@require_POST
def unblind(request):
    trial = _trial(request, Role.DATA_MANAGER)  # a statistician is refused (403), not sent back with a message
    try:
        services.unblind(actor=request.user, trial=trial, password=request.POST.get("password", ""),
                         reason=request.POST.get("reason", ""))  # fmt: skip
        messages.success(request, "The arm labels are unblinded; exports now name the arms.")
    except TrialError as exc:
        messages.error(request, exc.message)
    return redirect("endpoints-index")
