"""Files that arrive without a chosen patient (C-STORE): file them under the matching patient or hold them.

A batch is one association's files. They are grouped by the incoming patient id, matched through the
keyed hash of the hospital id, and either stored (pseudonymised) or quarantined with the reason.
"""

import logging
import shutil
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from imaging.models import QuarantinedStudy
from trial.models import Patient
from trial.services.errors import InvalidInput
from trial.services.hospital_ids import hospital_id_hash

from .collector import collector_paused
from .parse import InputError, parse_file
from .pipeline import store_images

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    patient: str | None  # trial number where stored
    quarantine_id: int | None
    files: int
    message: str


def quarantine_folder() -> Path:
    return Path(settings.MEDIA_ROOT) / "quarantine"


def quarantine(paths: list[Path], *, reason: str, source: str, calling_ae: str, id_hash: str, modalities: str):
    folder = quarantine_folder() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    for path in paths:
        shutil.move(str(path), folder / path.name)
    record = QuarantinedStudy(calling_ae_title=calling_ae[:16], source=source, hospital_id_hash=id_hash,
                              folder=str(folder.relative_to(settings.MEDIA_ROOT)), file_count=len(paths),
                              modalities=modalities[:64], reason=reason)  # fmt: skip
    record.save()
    return record


def _read(path: Path):
    try:
        return parse_file(path), None  # the pixel data stays in the spooled file until it is stored
    except InputError as exc:
        return None, str(exc)
    except Exception as exc:
        return None, f"{path.name}: not a readable DICOM file ({type(exc).__name__})."


def _match(patient_id: str) -> tuple[Patient | None, str]:
    if not patient_id:
        return None, ""
    try:
        digest = hospital_id_hash(patient_id)
    except InvalidInput:
        return None, ""
    matches = list(Patient.objects.filter(hospital_id_hash=digest, trial__is_open=True).select_related("trial"))
    return (matches[0] if len(matches) == 1 else None), digest


@collector_paused()
def file_arrivals(paths: list[Path], *, source: str = "dicom", calling_ae: str = "") -> list[Outcome]:
    groups: dict[str, list] = defaultdict(list)
    unreadable: list[tuple[Path, str]] = []
    for path in paths:
        ds, problem = _read(path)
        if ds is None:
            unreadable.append((path, problem))
        else:
            groups[str(ds.get("PatientID", ""))].append((path, ds))
    outcomes = []
    if unreadable:
        reason = "Unusable files: " + " ".join(problem for _, problem in unreadable[:5])
        record = quarantine([p for p, _ in unreadable], reason=reason, source=source, calling_ae=calling_ae,
                            id_hash="", modalities="")  # fmt: skip
        outcomes.append(Outcome(None, record.pk, len(unreadable), reason))
    for patient_id, members in groups.items():
        modalities = ",".join(sorted({str(ds.Modality) for _, ds in members}))
        patient, digest = _match(patient_id)
        if patient is None:
            reason = "No patient enrolled in an open trial has this hospital patient id."
        else:
            try:
                store_images(patient=patient, datasets=[ds for _, ds in members], source=source)
            except InputError as exc:
                reason = f"Refused for {patient.trial_number}: {exc}"
            else:
                for path, _ in members:
                    path.unlink(missing_ok=True)
                outcomes.append(Outcome(patient.trial_number, None, len(members), "stored"))
                continue
        record = quarantine([p for p, _ in members], reason=reason, source=source, calling_ae=calling_ae,
                            id_hash=digest, modalities=modalities)  # fmt: skip
        log.warning("quarantined %d files from %s: %s", len(members), calling_ae or source, reason)
        outcomes.append(Outcome(None, record.pk, len(members), reason))
    return outcomes
