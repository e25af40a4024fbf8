"""Imaging use cases for views: upload for a chosen patient, resolve quarantined arrivals."""

import shutil
from pathlib import Path

import pydicom
from django.conf import settings
from django.db import transaction

from imaging.access import require_image_sender
from imaging.ingest.collector import collector_paused
from imaging.ingest.parse import InputError, parse_file, parse_payload
from imaging.ingest.payloads import Limits, UploadError, expand_uploads
from imaging.ingest.pipeline import store_images
from imaging.models import QuarantinedStudy, Series, Study
from trial.audit.recorder import audit_context
from trial.models import Patient
from trial.roles import Role
from trial.services.access import require_role
from trial.services.errors import Conflict, InvalidInput
from trial.services.hospital_ids import hospital_id_hash


def upload_limits() -> Limits:
    return Limits(settings.UPLOAD_MAX_BYTES, settings.UPLOAD_MAX_FILES, settings.UPLOAD_MAX_COMPRESSION_RATIO)


def _check_same_patient(patient: Patient, datasets: list) -> None:
    """Images are matched to the chosen patient by the keyed hash of their PatientID, so a wrong pick fails."""
    ids = {str(ds.get("PatientID", "")) for ds in datasets}
    if len(ids) > 1:
        raise InvalidInput(f"The upload holds images of {len(ids)} different patients; upload one patient at a time.")
    (patient_id,) = ids
    if not patient_id or hospital_id_hash(patient_id) != patient.hospital_id_hash:
        raise InvalidInput(
            f"These images carry a different hospital patient id than {patient.trial_number}'s; "
            "check that you chose the right patient. Nothing was stored."
        )


def upload_images(*, actor, patient: Patient, files: list[tuple[str, bytes]]) -> list[Series]:
    require_image_sender(actor, patient)
    try:
        with collector_paused():  # the bench (bench/ingest_bench.py) times these same steps
            datasets = [parse_payload(payload) for payload in expand_uploads(files, upload_limits())]
            _check_same_patient(patient, datasets)
            return store_images(patient=patient, datasets=datasets, source=Study.Source.UPLOAD, actor=actor)
    except (UploadError, InputError) as exc:
        raise InvalidInput(str(exc)) from exc


def quarantine_files(record: QuarantinedStudy) -> list[Path]:
    return sorted((Path(settings.MEDIA_ROOT) / record.folder).glob("*"))


def quarantine_summary(record: QuarantinedStudy) -> dict:
    """What a coordinator needs to recognise the arrival: read from the held files, never stored in the database."""
    for path in quarantine_files(record):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: S112 - unreadable files are listed by count only
            continue
        return {
            "patient_id": str(ds.get("PatientID", "")),
            "patient_name": str(ds.get("PatientName", "")),
            "study_date": str(ds.get("StudyDate", "")),
            "study_description": str(ds.get("StudyDescription", "")),
        }
    return {}


def _held(record: QuarantinedStudy) -> QuarantinedStudy:
    record = QuarantinedStudy.objects.select_for_update().get(pk=record.pk)
    if record.status != QuarantinedStudy.Status.HELD:
        raise Conflict(f"Quarantined arrival {record.pk} was already {record.get_status_display().lower()}.")
    return record


def assign_quarantined(*, actor, record: QuarantinedStudy, patient: Patient) -> list[Series]:
    require_image_sender(actor, patient)
    with transaction.atomic(), audit_context(actor, reason=f"quarantined arrival assigned to {patient.trial_number}"):
        record = _held(record)
        try:
            datasets = [parse_file(path) for path in quarantine_files(record)]
            _check_same_patient(patient, datasets)
            stored = store_images(patient=patient, datasets=datasets, source=record.source, actor=actor)
        except InputError as exc:
            raise InvalidInput(str(exc)) from exc
        except (pydicom.errors.InvalidDicomError, OSError) as exc:
            raise InvalidInput(f"The held files cannot be read: {exc}") from exc
        record.status, record.resolved_by, record.resolved_patient = "assigned", actor, patient
        record.save()
        folder = Path(settings.MEDIA_ROOT) / record.folder
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
    return stored


def discard_quarantined(*, actor, record: QuarantinedStudy, reason: str) -> None:
    require_role(actor, Role.COORDINATOR, Role.DATA_MANAGER, action="discard quarantined images")
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise InvalidInput("Say why the arrival is discarded.")
    with transaction.atomic(), audit_context(actor, reason=reason):
        record = _held(record)
        record.status, record.resolved_by = "discarded", actor
        record.save()
        folder = Path(settings.MEDIA_ROOT) / record.folder
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
