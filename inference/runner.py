"""One AI proposal job from start to stored result; called by the Celery task and nothing else.

State machine: queued → running → succeeded | failed. The job row is locked while its state changes; the
model runs outside any transaction; the files are written first and the AIContour row committed last, in
one transaction with the job's new state. The AIContour's unique job key makes a redelivered message (a
worker killed mid-job) end with exactly one contour: whoever commits second finds it and removes its files.
"""

import logging
import time
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from imaging.contours.compact import mask_sha256, pack_map, pack_mask
from imaging.dicom.volume import load_suv_volume, load_volume
from imaging.export import load_series_datasets
from trial.audit.recorder import audit_context
from trial.services.trials import require_unlocked

from .backends import CaseImages, Proposal
from .models import AIContour, InferenceJob, InferenceProgress
from .registry import load, model_folder

log = logging.getLogger(__name__)
_loaded: dict = {}  # (model pk, sha256, folder, device) → backend: a worker loads (and verifies) a model once


class Progress:
    """Writes stage and overall percent to InferenceProgress, at most about once a second per stage."""

    # stage → (start %, end %) of the whole job
    SPANS = {"loading images": (0, 10), "loading model": (10, 15), "preprocessing": (15, 25), "inference": (25, 90),
             "postprocessing": (90, 95), "storing": (95, 100)}  # fmt: skip

    def __init__(self, job_id: int):
        self.job_id = job_id
        self._last = (None, -1.0)

    def __call__(self, stage: str, fraction: float) -> None:
        start, end = self.SPANS.get(stage, (0, 100))
        percent = int(start + (end - start) * min(max(fraction, 0.0), 1.0))
        now = time.monotonic()
        if stage == self._last[0] and now - self._last[1] < 1.0 and fraction < 1.0:
            return
        self._last = (stage, now)
        InferenceProgress.objects.update_or_create(job_id=self.job_id, defaults={"stage": stage, "percent": percent})


def start(job_id: int, worker: str) -> InferenceJob | None:
    """Mark the job running; None when there is nothing to do (gone, finished, or already has its contour)."""
    with transaction.atomic(), audit_context(None):
        job = InferenceJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in (InferenceJob.Status.SUCCEEDED, InferenceJob.Status.FAILED):
            return None
        if AIContour.objects.filter(job=job).exists():  # committed, then the worker died before acking
            return None
        job.status = InferenceJob.Status.RUNNING
        job.attempts += 1
        job.started_at = timezone.now()
        job.worker = worker[:200]
        job.save()
    return job


def fail(job_id: int, reason: str) -> None:
    with transaction.atomic(), audit_context(None):
        job = InferenceJob.objects.select_for_update().get(pk=job_id)
        if job.status == InferenceJob.Status.SUCCEEDED:
            return
        job.status = InferenceJob.Status.FAILED
        job.failure_reason = reason
        job.finished_at = timezone.now()
        job.save()
    InferenceProgress.objects.update_or_create(job_id=job_id, defaults={"stage": "failed"})


def case_images(job: InferenceJob) -> CaseImages:
    if job.ct_series is None:
        raise ValueError(f"{job.patient.trial_number} has no CT series; the proposal needs the planning CT.")
    ct = load_volume(load_series_datasets(job.ct_series))
    pet = load_suv_volume(load_series_datasets(job.pet_series)) if job.pet_series is not None else None
    return CaseImages(hu=ct.array, ct_grid=ct.grid, suv=pet.array if pet else None, pet_grid=pet.grid if pet else None)


def backend_for(job: InferenceJob):
    model = job.model_version
    key = (model.pk, model.sha256, str(model_folder(model)), settings.INFERENCE_DEVICE)
    if key not in _loaded:
        _loaded.clear()  # one model in memory at a time
        _loaded[key] = load(model, device=settings.INFERENCE_DEVICE or None)
    return _loaded[key]


def run(job_id: int, worker: str = "") -> str:
    """Do the job; returns what happened. Errors propagate (the task decides: retry or fail)."""
    job = start(job_id, worker)
    if job is None:
        return "nothing to do"
    began = time.perf_counter()
    progress = Progress(job.pk)
    progress("loading images", 0.0)
    images = case_images(job)
    progress("loading model", 0.0)
    backend = backend_for(job)
    proposal = backend.propose(images, progress=progress)
    progress("storing", 0.0)
    return store(job, images, proposal, time.perf_counter() - began)


def store(job: InferenceJob, images: CaseImages, proposal: Proposal, seconds: float) -> str:
    prefix = f"ai/{job.patient.trial_number}/job-{job.pk}-{uuid.uuid4().hex[:8]}"
    written = []
    try:
        for kind, blob in (("mask", pack_mask(proposal.mask)), ("probability", pack_map(proposal.probability)),
                           ("uncertainty", pack_map(proposal.uncertainty))):  # fmt: skip
            written.append(default_storage.save(f"{prefix}/{kind}.npz", ContentFile(blob)))
        spacing = images.ct_grid.spacing
        with transaction.atomic(), audit_context(None):
            require_unlocked(job.patient.trial_id, "storing an AI proposal")  # the job then fails with this reason
            locked = InferenceJob.objects.select_for_update().get(pk=job.pk)
            if AIContour.objects.filter(job=locked).exists():
                raise _AlreadyStored
            AIContour(
                job=locked, patient=locked.patient, ct_series=locked.ct_series, model_version=locked.model_version,
                model_sha256=locked.model_version.sha256, shape=list(proposal.mask.shape),
                mask_file=written[0], mask_sha256=mask_sha256(proposal.mask), probability_file=written[1],
                uncertainty_file=written[2],
                volume_ml=float(proposal.mask.sum()) * float(spacing[0] * spacing[1] * spacing[2]) / 1000.0,
                case_uncertainty=proposal.case_uncertainty, members=proposal.members,
                member_kind=proposal.member_kind, device=proposal.device,
                forward_seconds=proposal.forward_seconds, total_seconds=seconds,
            ).save()  # fmt: skip
            locked.status = InferenceJob.Status.SUCCEEDED
            locked.finished_at = timezone.now()
            locked.failure_reason = ""
            locked.save()
    except (_AlreadyStored, IntegrityError):
        _remove(written)
        return "already stored"
    except BaseException:
        _remove(written)
        raise
    InferenceProgress.objects.update_or_create(job_id=job.pk, defaults={"stage": "done", "percent": 100})
    log.info("AI proposal for %s stored (%.1f s)", job.patient.trial_number, seconds)
    return "stored"


class _AlreadyStored(Exception):
    pass


def _remove(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:  # pragma: no cover - best effort; the files are unreferenced either way
            log.warning("could not remove %s", name)
