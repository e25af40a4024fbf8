"""Who gets an AI proposal and when: AI-arm patients whose required imaging is complete, once, unless a data
manager asks for a re-run with a reason. Manual-arm patients never get a job, so nothing of one can reach
their physician."""

from django.db import transaction

from imaging.models import ImagingCompletion, Series
from trial.audit.recorder import audit_context
from trial.models import Allocation, Patient
from trial.roles import Role
from trial.services.access import allocations_visible_to, require_role
from trial.services.errors import Conflict, InvalidInput
from trial.services.trials import require_unlocked

from .models import AIContour, InferenceJob, InferenceProgress
from .registry import active_model

AI_ARM = "ai"


def is_ai_arm(patient: Patient) -> bool:
    return Allocation.objects.filter(patient=patient, arm=AI_ARM).exists()


def request_proposal(patient: Patient, *, trigger: str, actor=None, reason: str = "") -> InferenceJob | None:
    """Queue an AI proposal if the patient is in the AI arm, imaging is complete and none was asked for yet
    (events may arrive twice; a second one does nothing). Returns the job, or None when none is due."""
    if not is_ai_arm(patient) or not ImagingCompletion.objects.filter(patient=patient).exists():
        return None
    with transaction.atomic(), audit_context(actor, reason=reason):
        require_unlocked(patient.trial_id, "asking for an AI proposal")
        patient = Patient.objects.select_for_update().get(pk=patient.pk)  # one request at a time per patient
        if trigger != "rerun" and InferenceJob.objects.filter(patient=patient).exists():
            return None
        return _create_job(patient, trigger=trigger, actor=actor, reason=reason)


def rerun(*, actor, patient: Patient, reason: str) -> InferenceJob:
    """A data manager asks for a new proposal (e.g. after a new model, or a failed run); audited with the reason."""
    require_role(actor, Role.DATA_MANAGER, action="re-run the AI proposal")
    if not reason.strip():
        raise InvalidInput("Give a reason for the re-run; it goes into the audit trail.")
    if not is_ai_arm(patient):
        raise Conflict(f"{patient.trial_number} is not in the AI-assisted arm; it gets no AI proposal.")
    if not ImagingCompletion.objects.filter(patient=patient).exists():
        raise Conflict(f"{patient.trial_number} does not have its required imaging yet.")
    if InferenceJob.objects.filter(patient=patient, status__in=("queued", "running")).exists():
        raise Conflict(f"An AI proposal for {patient.trial_number} is queued or running already.")
    job = request_proposal(patient, trigger="rerun", actor=actor, reason=reason.strip())
    assert job is not None
    return job


def _create_job(patient: Patient, *, trigger: str, actor, reason: str) -> InferenceJob:
    from .tasks import send

    model = active_model(patient.trial)
    ct = Series.objects.filter(study__patient=patient, modality="CT").order_by("received_at").first()
    pet = Series.objects.filter(study__patient=patient, modality="PT").order_by("received_at").first()
    job = InferenceJob(patient=patient, model_version=model, ct_series=ct, pet_series=pet, trigger=trigger,
                       reason=reason, requested_by=actor)  # fmt: skip
    if model is None:
        job.status = InferenceJob.Status.FAILED
        job.failure_reason = (
            f"No AI model is active for trial {patient.trial.protocol_id}. A data manager registers one "
            "(register_model), activates it for the trial and re-runs this proposal."
        )
    job.save()
    InferenceProgress.objects.create(job=job, stage="queued" if model else "failed")
    if model is not None:
        send(job.pk)  # through the task outbox: sent once this transaction commits, even if the broker is down
    return job


def jobs_visible_to(user):
    """Jobs reveal the arm: only for people who may see the patient's allocation (never the blinded panel)."""
    return InferenceJob.objects.filter(patient__in=allocations_visible_to(user))


def contours_visible_to(user):
    return AIContour.objects.filter(job__in=jobs_visible_to(user))


def current_proposal(patient: Patient) -> AIContour | None:
    """The AI contour the physician starts from: that of the newest successful job."""
    return AIContour.objects.filter(patient=patient).order_by("-created_at", "-pk").first()
