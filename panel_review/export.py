"""The approved GTV to the treatment planning system: a re-identified RTSTRUCT on the planning CT (imaging's
export does the re-identification, the audit entry and the C-STORE)."""

from pydicom.dataset import Dataset

from imaging.export import planning_rtstruct
from trial.models import Patient
from trial.services.errors import Conflict

from .models import ReviewCase
from .services import version_labels


def approved_rtstruct(*, actor, patient: Patient, roi_name: str = "GTV") -> Dataset:
    """All segments of the approved GTV as one ROI (data managers only, enforced by planning_rtstruct)."""
    case = ReviewCase.objects.filter(patient=patient, approved_version__isnull=False).first()
    if case is None:
        raise Conflict(f"{patient.trial_number} has no GTV approved by the panel yet.")
    return planning_rtstruct(actor=actor, patient=patient, mask=version_labels(case.approved_version) > 0,
                             roi_name=roi_name)  # fmt: skip
