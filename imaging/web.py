"""Imaging pages: a patient's series with the upload form, and the quarantine of unfiled arrivals."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from imaging import services
from imaging.access import patients_with_images_for, series_visible_to
from imaging.models import QuarantinedStudy
from trial.roles import Role, has_role
from trial.services.errors import TrialError


def _require(request, *roles):
    if not has_role(request.user, *roles):
        raise PermissionDenied("Your role may not open this page.")


@login_required
def index(request):
    _require(request, Role.COORDINATOR, Role.PHYSICIAN, Role.DATA_MANAGER)
    patients = (
        patients_with_images_for(request.user).annotate(series_count=Count("studies__series")).order_by("trial_number")
    )
    held = (
        QuarantinedStudy.objects.filter(status="held").count()
        if has_role(request.user, Role.COORDINATOR, Role.DATA_MANAGER)
        else None
    )
    return render(request, "imaging/index.html", {"patients": patients, "held": held})


@login_required
def patient_images(request, pk):
    _require(request, Role.COORDINATOR, Role.PHYSICIAN, Role.DATA_MANAGER)
    patient = get_object_or_404(patients_with_images_for(request.user), pk=pk)
    series = series_visible_to(request.user).filter(study__patient=patient).select_related("study")
    can_send = has_role(request.user, Role.DATA_MANAGER) or (
        has_role(request.user, Role.COORDINATOR) and request.user.site_memberships.filter(site=patient.site).exists()
    )
    return render(request, "imaging/patient.html", {"patient": patient, "series": series, "can_send": can_send,
                                                    "required": patient.trial.required_modalities})  # fmt: skip


@login_required
def quarantine(request):
    _require(request, Role.COORDINATOR, Role.DATA_MANAGER)
    held = [(record, services.quarantine_summary(record)) for record in QuarantinedStudy.objects.filter(status="held")]
    resolved = QuarantinedStudy.objects.exclude(status="held").select_related("resolved_by", "resolved_patient")[:20]
    patients = patients_with_images_for(request.user).order_by("trial_number")
    return render(request, "imaging/quarantine.html", {"held": held, "resolved": resolved, "patients": patients})


@login_required
@require_POST
def quarantine_assign(request, pk):
    _require(request, Role.COORDINATOR, Role.DATA_MANAGER)
    record = get_object_or_404(QuarantinedStudy, pk=pk)
    patient = get_object_or_404(patients_with_images_for(request.user), pk=request.POST.get("patient") or 0)
    try:
        stored = services.assign_quarantined(actor=request.user, record=record, patient=patient)
    except TrialError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{len(stored)} series filed under {patient.trial_number}.")
    return redirect("imaging-quarantine")


@login_required
@require_POST
def quarantine_discard(request, pk):
    _require(request, Role.COORDINATOR, Role.DATA_MANAGER)
    record = get_object_or_404(QuarantinedStudy, pk=pk)
    try:
        services.discard_quarantined(actor=request.user, record=record, reason=request.POST.get("reason", ""))
    except TrialError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Arrival {record.pk} discarded; its files are deleted.")
    return redirect("imaging-quarantine")
