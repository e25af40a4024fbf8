"""AI proposal pages: a patient's proposal (status, progress, failure reason, downloads, re-run) and the
registered models. Only for people who may see the patient's arm; the server decides (services)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from trial.models import Patient, Trial
from trial.roles import Role, has_role
from trial.services.access import can_see_allocation, patients_visible_to
from trial.services.errors import TrialError

from . import services
from .models import ActiveModel, ModelVersion


def _visible_patient(request, pk) -> Patient:
    patient = get_object_or_404(patients_visible_to(request.user), pk=pk)
    if not can_see_allocation(request.user, patient):
        raise PermissionDenied("The AI proposal would reveal the arm, which your role may not see.")
    return patient


@login_required
def patient_proposal(request, pk):
    patient = _visible_patient(request, pk)
    jobs = services.jobs_visible_to(request.user).filter(patient=patient).select_related("model_version", "progress")
    context = {
        "patient": patient,
        "ai_arm": services.is_ai_arm(patient),
        "jobs": jobs,
        "current": services.current_proposal(patient),
        "can_rerun": has_role(request.user, Role.DATA_MANAGER),
        "open_job": any(job.is_open for job in jobs),
    }
    return render(request, "inference/patient.html", context)


@login_required
@require_POST
def patient_rerun(request, pk):
    if not has_role(request.user, Role.DATA_MANAGER):
        raise PermissionDenied("Only data managers re-run the AI proposal.")
    patient = _visible_patient(request, pk)
    try:
        services.rerun(actor=request.user, patient=patient, reason=request.POST.get("reason", ""))
        messages.success(request, f"A new AI proposal for {patient.trial_number} is queued.")
    except TrialError as exc:
        messages.error(request, exc.message)
    return redirect("inference-patient", pk=pk)


@login_required
def model_list(request):
    if not has_role(request.user, Role.DATA_MANAGER):
        raise PermissionDenied("Only data managers see the model registry.")
    active = {a.trial_id: a for a in ActiveModel.objects.select_related("model_version")}
    trials = [(trial, active.get(trial.pk)) for trial in Trial.objects.all()]
    return render(request, "inference/models.html", {"models": ModelVersion.objects.all(), "trials": trials})
