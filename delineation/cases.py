"""Which cases a physician has, what state each is in, and since when: the worklist's answers."""

from dataclasses import dataclass
from datetime import datetime

from imaging.models import ImagingCompletion, Series
from inference.models import AIContour
from inference.services import current_proposal, is_ai_arm
from trial.models import Patient

from .models import DELINEATION, ContourVersion, DelineationSession, Submission

STATUS_LABELS = {
    "waiting_images": "Waiting for images",
    "waiting_ai": "Waiting for the AI proposal",
    "ready": "Ready",
    "in_progress": "In progress",
    "submitted": "Submitted",
}
SEGMENT_COLOURS = [(230, 41, 41), (41, 120, 230), (60, 180, 75), (245, 130, 48)]


@dataclass(frozen=True)
class CaseStatus:
    code: str
    since: datetime

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.code]


def status_of(patient: Patient) -> CaseStatus:
    """The case's stage and when it entered it (the worklist shows how long it has waited)."""
    submission = Submission.objects.filter(patient=patient).first()
    if submission is not None:
        return CaseStatus("submitted", submission.submitted_at)
    first_session = DelineationSession.objects.filter(patient=patient, stream=DELINEATION).order_by("opened_at").first()
    if first_session is not None:
        return CaseStatus("in_progress", first_session.opened_at)
    completion = ImagingCompletion.objects.filter(patient=patient).first()
    if completion is None:
        return CaseStatus("waiting_images", patient.allocation.randomised_at)
    if is_ai_arm(patient):
        proposal = current_proposal(patient)
        if proposal is None:
            return CaseStatus("waiting_ai", completion.completed_at)
        return CaseStatus("ready", max(completion.completed_at, proposal.created_at))
    return CaseStatus("ready", completion.completed_at)


def reference_ct(patient: Patient) -> Series | None:
    """The planning CT the GTV is drawn on (the first CT received, as for the AI proposal)."""
    return Series.objects.filter(study__patient=patient, modality="CT").order_by("received_at", "pk").first()


def fused_pet(patient: Patient) -> Series | None:
    return Series.objects.filter(study__patient=patient, modality="PT").order_by("received_at", "pk").first()


def segments_of(patient: Patient) -> list[dict]:
    return [
        {"index": i, "label": label, "color": list(SEGMENT_COLOURS[(i - 1) % len(SEGMENT_COLOURS)])}
        for i, label in enumerate(patient.trial.gtv_segments, start=1)
    ]


def latest_version(patient: Patient, stream: str = DELINEATION) -> ContourVersion | None:
    return ContourVersion.objects.filter(patient=patient, stream=stream).order_by("-number").first()


def proposal_of(patient: Patient) -> AIContour | None:
    """The AI proposal the physician starts from: AI arm only. For a manual-arm case this is always None,
    whatever is in the database, so nothing of a model can reach that physician."""
    if not is_ai_arm(patient):
        return None
    return current_proposal(patient)
