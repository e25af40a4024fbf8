"""One pipeline for uploads and C-STORE: check everything, pseudonymise, write files, then commit rows.

Nothing is stored unless every series passes its checks; files written before a failed commit are
removed again, so a refused batch leaves nothing behind.
"""

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DataError, IntegrityError, transaction

from imaging.dicom.deid import DeidError, date_shift_for, deidentify
from imaging.dicom.elements import DeferredValueChanged, uid_text, value_of
from imaging.dicom.rewrite import encode_file_chunks
from imaging.dicom.suv import SUVError, earliest_acquisition_datetime, suv_bw_factor
from imaging.geometry import Grid, SeriesError, grid_from_datasets
from imaging.models import ImagingCompletion, Instance, Series, Study, UidMapping
from imaging.signals import imaging_complete
from trial.audit.recorder import audit_context
from trial.models import Patient
from trial.services.errors import Conflict
from trial.services.trials import require_unlocked

from .files import StoredFiles
from .helper import Helper, can_fork
from .identity import seal_identity
from .parse import IMAGE_MODALITIES, MODALITY, InputError, describe, source_name
from .rows import insert_rows

log = logging.getLogger(__name__)
SERIES_INSTANCE_UID = 0x0020000E


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
        groups[uid_text(ds, SERIES_INSTANCE_UID)].append(ds)  # present: checked by check_image
    plans = []
    for members in groups.values():
        label = _series_label(members[0])
        modalities = {str(value_of(ds, MODALITY, "")) for ds in members}  # present: checked by check_image
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


class _Uids(NamedTuple):
    """The UIDs of a de-identified image the pipeline files it under, as text."""

    study: str
    series: str
    instance: str
    sop_class: str

    TAGS = (0x0020000D, 0x0020000E, 0x00080018, 0x00080016)


class _Filed(NamedTuple):
    """One image written: its UIDs, the UIDs it replaced, where it is and its SHA-256."""

    uids: _Uids
    uid_map: dict
    name: str
    sha256: str


def _require_storable_uids(ds, uids) -> None:
    """The SOP class and the original UIDs (kept for re-identification) go into 64-character text columns."""
    for uid in uids:
        if len(uid) > 64 or "\x00" in uid:
            raise InputError(f"{source_name(ds)}: {uid[:80]!r} is not a valid DICOM UID (at most 64 digits and dots).")


HELPER_MIN_IMAGES = 32  # below this a helper process costs more than it saves
PARENT_SHARE = 0.35  # this process also checks the series, so the helper takes the larger share


def store_images(*, patient: Patient, datasets: list, source: str, actor=None) -> list[Series]:
    """Pseudonymise and store the datasets of one patient; all series or none.

    A forked helper process (helper.py) prepares and writes part of the images where it can.
    """
    _require_unlocked(patient, hold=False)  # before writing anything; checked again, held, when committing
    salt = settings.DEID_SALT
    pseudonym = patient.trial_number
    shift = date_shift_for(pseudonym, salt)

    memo: dict = {}  # values that recur in every image are rewritten once (see deidentify)

    def prepare(ds):  # no effect outside the dataset itself
        try:
            result = deidentify(ds, pseudonym=pseudonym, salt=salt, date_shift_days=shift, copy_input=False,
                                memo=memo)  # fmt: skip
            uids = _Uids(*(uid_text(result.dataset, tag) for tag in _Uids.TAGS))
            chunks = encode_file_chunks(result.dataset)
        except DeidError as exc:  # e.g. burned-in annotation: refused with de-identification's own reason
            raise InputError(f"{source_name(ds)}: {exc}") from exc
        except DeferredValueChanged as exc:  # a file read from disk (listener, quarantine) changed meanwhile
            raise InputError(str(exc)) from exc
        except Exception as exc:  # pure code on one file: an element parse let through but nothing can use
            raise InputError(f"{source_name(ds)}: an element cannot be read or rewritten ({describe(exc)}).") from exc
        _require_storable_uids(ds, (uids.sop_class or "", *result.uid_map))
        return uids, result.uid_map, chunks

    def finish(prepared, files: StoredFiles) -> _Filed:
        uids, uid_map, chunks = prepared
        name, digest = files.write(_storage_path(patient, uids.study, uids.series, uids.instance), chunks)
        return _Filed(uids, uid_map, name, digest)

    helper_files: list[StoredFiles] = []

    def finish_in_helper(prepared, record_name) -> _Filed:
        if not helper_files:
            helper_files.append(StoredFiles(default_storage, on_create=record_name))
        return finish(prepared, helper_files[0])

    datasets = list(datasets)
    written = StoredFiles(default_storage)
    shared = _helper_share(datasets, written)
    helper = Helper.start(shared, prepare, finish_in_helper) if shared else None
    if helper is not None:
        log.debug("helper process %s prepares %d of %d images", helper.pid, len(shared), len(datasets))
    in_helper = {id(ds) for ds in shared} if helper else set()
    try:
        try:
            plans = plan_series(datasets)
            identity = seal_identity(plans[0].datasets[0], settings.IDENTITY_KEY)
        except InputError:
            raise
        except Exception as exc:  # pure checks of the parsed files: a value parse let through that cannot be read
            raise InputError(f"An attribute of the images cannot be read ({describe(exc)}).") from exc
        # Each series' first image first: its pseudonymous series UID tells whether the series is stored
        # already, which is refused before any file is written.
        firsts = [prepare(plan.datasets[0]) for plan in plans]
        existing = Series.objects.filter(series_instance_uid__in=[uids.series for uids, _, _ in firsts])
        if existing.exists():
            names = ", ".join(f"{s.modality} series of {s.slices} slices" for s in existing)
            raise InputError(f"Already stored for {pseudonym}: {names}. Nothing was imported again.")
        if helper is not None:
            helper.go()
        # Every image prepared first, then all written at once (on two threads where the disk is local).
        mine = [
            (ds, first if index == 0 else prepare(ds))
            for plan, first in zip(plans, firsts, strict=True)
            for index, ds in enumerate(plan.datasets)
            if id(ds) not in in_helper
        ]
        to_write = [(_storage_path(patient, u.study, u.series, u.instance), chunks) for _, (u, _, chunks) in mine]
        try:
            stored_files = written.write_many(to_write)
        except DeferredValueChanged as exc:  # a file read from disk (listener, quarantine) changed meanwhile
            raise InputError(str(exc)) from exc
        filed = {
            id(ds): _Filed(uids, uid_map, name, digest)
            for (ds, (uids, uid_map, _)), (name, digest) in zip(mine, stored_files, strict=True)
        }
        if helper is not None:
            filed.update(zip(map(id, shared), helper.results(), strict=True))
        try:
            with transaction.atomic(), audit_context(actor):
                _require_unlocked(patient)
                stored = _commit_rows(patient, plans, filed, identity, source)
                transaction.on_commit(lambda: check_imaging_complete(patient.pk))
        except IntegrityError as exc:  # e.g. these instances are stored already, in another series
            raise InputError(
                f"Some of these images are already stored for {pseudonym} (the same SOP instance, in another series or "
                "study); nothing was imported. Send each image once."
            ) from exc
        except DataError as exc:  # a value the checks let through does not fit its column (e.g. a 65-character UID)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            problem = f"A value in these images cannot be stored ({first_line[:120]}); nothing was imported."
            raise InputError(problem) from exc
    except BaseException:
        try:
            helper_names = helper.stop() if helper is not None else []
        finally:
            written.discard()
        for name in helper_names:
            default_storage.delete(name)
        raise
    if helper is not None:
        helper.close()
    return stored


def _require_unlocked(patient: Patient, hold: bool = True) -> None:
    """Images of a trial whose database is locked are refused like any unusable input (the listener quarantines
    them with the reason; an upload gets it as its error)."""
    try:
        require_unlocked(patient.trial_id, "storing images", hold=hold)
    except Conflict as exc:
        raise InputError(exc.message) from exc


def _helper_share(datasets: list, written: StoredFiles) -> list:
    """The datasets a helper process would take: none for small imports, or files not on local disk."""
    if len(datasets) < HELPER_MIN_IMAGES or not written.direct or not can_fork():
        return []
    if not getattr(settings, "IMAGING_INGEST_HELPER_PROCESS", True):
        return []
    return datasets[int(len(datasets) * PARENT_SHARE) :]


def _commit_rows(patient, plans, filed: dict, identity, source) -> list[Series]:
    stored, uid_map = [], {}
    for plan in plans:
        first = plan.datasets[0]  # de-identified in place by store_images
        study = Study.objects.filter(study_instance_uid=first.StudyInstanceUID).first()
        if study is None:
            study = Study(patient=patient, study_instance_uid=first.StudyInstanceUID, study_date=_date(first),
                          description=str(first.get("StudyDescription", ""))[:200], source=source,
                          identity_token=identity)  # fmt: skip
            study.save()
        elif study.patient_id != patient.pk:
            raise InputError("This study is already filed under another patient; nothing was imported.")
        rows = [filed[id(ds)] for ds in plan.datasets]
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
            manifest_sha256=hashlib.sha256("".join(row.sha256 for row in rows).encode()).hexdigest(),
        )
        series.save()
        insert_rows(Instance, {
            "series": [series.pk] * len(rows),
            "sop_instance_uid": [row.uids.instance for row in rows],
            "sop_class_uid": [row.uids.sop_class for row in rows],
            "slice_index": list(range(len(rows))),
            "file": [row.name for row in rows],
            "sha256": [row.sha256 for row in rows],
            "suv_factor": [float(f) for f in plan.suv_factors] if plan.suv_factors else [None] * len(rows),
        })  # fmt: skip
        stored.append(series)
        for row in rows:
            uid_map.update(row.uid_map)
    insert_rows(UidMapping, {
        "patient": [patient.pk] * len(uid_map),
        "pseudonymous_uid": list(uid_map.values()),
        "original_uid": list(uid_map),
    }, ignore_conflicts=True)  # fmt: skip
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
        try:
            require_unlocked(patient.trial_id, "recording complete imaging")
        except Conflict as exc:  # the lock came between the import and this after-commit step
            log.warning("%s: %s", patient.trial_number, exc.message)
            return False
        _completion, created = ImagingCompletion.objects.get_or_create(patient=patient)
    if created:
        log.info("imaging complete for %s", patient.trial_number)
        imaging_complete.send(sender=ImagingCompletion, patient=patient)
    return created


__all__ = ["IMAGE_MODALITIES", "InputError", "check_imaging_complete", "plan_series", "store_images"]
