"""One pipeline for uploads and C-STORE: check everything, pseudonymise, write files, then commit rows.

Nothing is stored unless every series passes its checks; files written before a failed commit are
removed again, so a refused batch leaves nothing behind.
"""

import hashlib
import io
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from imaging.dicom.deid import date_shift_for, deidentify
from imaging.dicom.suv import SUVError, earliest_acquisition_datetime, suv_bw_factor
from imaging.geometry import Grid, SeriesError, grid_from_datasets
from imaging.models import ImagingCompletion, Instance, Series, Study, UidMapping
from imaging.signals import imaging_complete
from trial.audit.recorder import audit_context
from trial.models import Patient

from .identity import seal_identity
from .parse import IMAGE_MODALITIES, InputError

log = logging.getLogger(__name__)


@dataclass
class SeriesPlan:
    modality: str
    grid: Grid
    datasets: list  # original datasets, z order
    suv_factors: list = field(default_factory=list)


def _series_label(ds) -> str:
    return f"{ds.get('Modality', '?')} series {ds.get('SeriesDescription', '') or ds.get('SeriesNumber', '')}".strip()


def plan_series(datasets: list) -> list[SeriesPlan]:
    """Group by series and run every check before anything is written."""
    groups = defaultdict(list)
    for ds in datasets:
        groups[str(ds.SeriesInstanceUID)].append(ds)
    plans = []
    for members in groups.values():
        label = _series_label(members[0])
        modalities = {str(ds.Modality) for ds in members}
        if len(modalities) > 1:
            raise InputError(f"{label}: mixes modalities {sorted(modalities)} in one series.")
        try:
            grid, ordered = grid_from_datasets(members)
        except SeriesError as exc:
            raise InputError(f"{label}: {exc}") from exc
        plan = SeriesPlan(modality=str(ordered[0].Modality), grid=grid, datasets=ordered)
        if plan.modality == "PT":
            try:
                earliest = earliest_acquisition_datetime(ordered)
                plan.suv_factors = [suv_bw_factor(ds, earliest_acquisition=earliest) for ds in ordered]
            except SUVError as exc:
                raise InputError(f"{label}: SUV cannot be computed: {exc}") from exc
        plans.append(plan)
    return plans


def _storage_path(patient: Patient, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"dicom/{patient.trial_number}/{study_uid}/{series_uid}/{sop_uid}.dcm"


def _encode(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def store_images(*, patient: Patient, datasets: list, source: str, actor=None) -> list[Series]:
    """Pseudonymise and store the datasets of one patient; all series or none."""
    plans = plan_series(datasets)
    salt = settings.DEID_SALT
    pseudonym = patient.trial_number
    shift = date_shift_for(pseudonym, salt)
    identity = seal_identity(plans[0].datasets[0], settings.IDENTITY_KEY)

    prepared, uid_map = [], {}
    for plan in plans:
        deidentified = []
        for ds in plan.datasets:
            result = deidentify(ds, pseudonym=pseudonym, salt=salt, date_shift_days=shift)
            uid_map.update(result.uid_map)
            deidentified.append(result.dataset)
        prepared.append((plan, deidentified))

    existing = Series.objects.filter(series_instance_uid__in=[d[0].SeriesInstanceUID for _, d in prepared])
    if existing.exists():
        names = ", ".join(f"{s.modality} series of {s.slices} slices" for s in existing)
        raise InputError(f"Already stored for {pseudonym}: {names}. Nothing was imported again.")

    written: list[str] = []
    try:
        files = []
        for plan, deidentified in prepared:
            for index, ds in enumerate(deidentified):
                data = _encode(ds)
                path = _storage_path(patient, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
                saved = default_storage.save(path, ContentFile(data))
                written.append(saved)
                files.append((plan, ds, index, saved, hashlib.sha256(data).hexdigest()))
        with transaction.atomic(), audit_context(actor):
            stored = _commit_rows(patient, prepared, files, uid_map, identity, source)
            transaction.on_commit(lambda: check_imaging_complete(patient.pk))
    except Exception:
        for path in written:
            default_storage.delete(path)
        raise
    return stored


def _commit_rows(patient, prepared, files, uid_map, identity, source) -> list[Series]:
    stored = []
    by_series = defaultdict(list)
    for plan, ds, index, path, digest in files:
        by_series[ds.SeriesInstanceUID].append((plan, ds, index, path, digest))
    for plan, deidentified in prepared:
        first = deidentified[0]
        study = Study.objects.filter(study_instance_uid=first.StudyInstanceUID).first()
        if study is None:
            study = Study(patient=patient, study_instance_uid=first.StudyInstanceUID, study_date=_date(first),
                          description=str(first.get("StudyDescription", ""))[:200], source=source,
                          identity_token=identity)  # fmt: skip
            study.save()
        elif study.patient_id != patient.pk:
            raise InputError("This study is already filed under another patient; nothing was imported.")
        rows = by_series[first.SeriesInstanceUID]
        series = Series(
            study=study,
            series_instance_uid=first.SeriesInstanceUID,
            modality=plan.modality,
            description=str(first.get("SeriesDescription", ""))[:200],
            frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
            rows=plan.grid.shape[1],
            columns=plan.grid.shape[2],
            slices=plan.grid.shape[0],
            spacing=list(plan.grid.spacing),
            affine=_affine_list(plan.grid),
            acquired_at=None,
            manifest_sha256=hashlib.sha256("".join(r[4] for r in rows).encode()).hexdigest(),
        )
        series.save()
        Instance.objects.bulk_create(
            Instance(series=series, sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID,
                     slice_index=index, file=path, sha256=digest,
                     suv_factor=plan.suv_factors[index] if plan.suv_factors else None)
            for plan, ds, index, path, digest in rows
        )  # fmt: skip
        stored.append(series)
    UidMapping.objects.bulk_create(
        [UidMapping(patient=patient, pseudonymous_uid=new, original_uid=old) for old, new in uid_map.items()],
        ignore_conflicts=True,
    )
    return stored


def _affine_list(grid: Grid) -> list:
    return [[float(v) for v in row] for row in grid.affine]


def _date(ds):
    from datetime import date

    value = str(ds.get("StudyDate", "") or "")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])) if len(value) >= 8 else None
    except ValueError:
        return None


def required_modalities_present(patient: Patient) -> bool:
    required = set(patient.trial.required_modalities)
    present = set(Series.objects.filter(study__patient=patient).values_list("modality", flat=True))
    return required <= present


def check_imaging_complete(patient_id: int) -> bool:
    """Send imaging_complete once, when the last required modality arrives."""
    patient = Patient.objects.select_related("trial").get(pk=patient_id)
    if not required_modalities_present(patient):
        return False
    with transaction.atomic():
        _completion, created = ImagingCompletion.objects.get_or_create(patient=patient)
    if created:
        log.info("imaging complete for %s", patient.trial_number)
        imaging_complete.send(sender=ImagingCompletion, patient=patient)
    return created


__all__ = ["IMAGE_MODALITIES", "InputError", "check_imaging_complete", "plan_series", "store_images"]
