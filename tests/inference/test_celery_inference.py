"""End to end with a real Celery worker, Redis and PostgreSQL: images → AI proposal with provenance.

The worker is killed in the middle of the job and started again; the job must still end with exactly one
AI contour (the restarted worker re-sends the job it died with; the runner makes a second delivery harmless).
"""

import os
import signal
import time

import numpy as np
import pytest
from django.db import connection

from imaging.contours.maskio import read_mask
from imaging.dicom.volume import load_volume
from imaging.export import load_series_datasets
from inference.models import AIContour, InferenceJob, InferenceProgress
from inference.postprocess import dice
from inference.storage import read_map
from inference.storage import read_mask as read_ai_mask
from tests.processes import celery_worker, wait_for

from .conftest import patient_in_arm, register_demo, store_phantom

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery, pytest.mark.slow]


def _progress(job):
    row = InferenceProgress.objects.filter(job=job).first()
    return (row.stage, row.percent) if row else ("", 0)


def test_ai_arm_case_gets_exactly_one_proposal_even_when_the_worker_dies(world, tmp_path, settings, monkeypatch):
    monkeypatch.setenv("STORAGE_DIR", str(settings.MEDIA_ROOT))  # the worker process reads the same files
    monkeypatch.setenv("MODEL_DIR", str(settings.MODEL_ROOT))
    model = register_demo(world)
    ai = patient_in_arm(world, "ai")
    manual = patient_in_arm(world, "manual")
    with celery_worker(connection.settings_dict) as worker:
        phantom = store_phantom(ai, tmp_path / "ai", seed=1002, rows=256)
        store_phantom(manual, tmp_path / "manual", seed=1003, rows=128, slices=40)
        job = wait_for(lambda: InferenceJob.objects.filter(patient=ai).first(), 30, what="the AI job")
        seen = []

        def in_inference():
            seen.append(_progress(job))
            return seen[-1][0] == "inference"

        wait_for(in_inference, 240, interval=0.05, what="the job to reach inference")
        os.killpg(worker.pid, signal.SIGKILL)  # mid-job: no chance to acknowledge or clean up
        worker.wait(timeout=20)
    job.refresh_from_db()
    assert job.status == "running" and not AIContour.objects.filter(job=job).exists()
    percents = [percent for _, percent in seen]
    assert percents == sorted(percents) and seen[-1][1] >= 25  # stage and percent, moving forward

    with celery_worker(connection.settings_dict, flush=False):
        wait_for(lambda: InferenceJob.objects.get(pk=job.pk).status in ("succeeded", "failed"), 300,
                 what="the restarted worker to finish the job")  # fmt: skip
        time.sleep(1.0)  # let any second delivery run its course too
    job.refresh_from_db()
    assert job.status == "succeeded", job.failure_reason
    assert job.attempts == 2
    assert AIContour.objects.filter(patient=ai).count() == 1
    contour = AIContour.objects.get(job=job)
    assert contour.model_version == model and contour.model_sha256 == model.sha256
    ct = load_volume(load_series_datasets(contour.ct_series))
    assert tuple(contour.shape) == ct.grid.shape
    mask = read_ai_mask(contour)
    uncertainty = read_map(contour, "uncertainty")
    probability = read_map(contour, "probability")
    assert uncertainty.min() >= 0 and uncertainty.max() <= 1 and uncertainty.max() > 0.5
    assert np.array_equal(mask, probability >= 0.5) or dice(mask, probability >= 0.5) > 0.95
    truth = read_mask(phantom.gtv_nifti, ct.grid)
    assert dice(mask, truth) >= 0.7
    assert abs(contour.volume_ml - truth.sum() * np.prod(ct.grid.spacing) / 1000) / contour.volume_ml < 0.5
    assert _progress(job) == ("done", 100)
    assert not InferenceJob.objects.filter(patient=manual).exists()


def test_a_job_over_the_time_limit_fails_with_that_reason(world, tmp_path, settings, monkeypatch):
    monkeypatch.setenv("STORAGE_DIR", str(settings.MEDIA_ROOT))
    monkeypatch.setenv("MODEL_DIR", str(settings.MODEL_ROOT))
    settings.INFERENCE_TIME_LIMIT_S = 2  # sent with the task; the soft limit needs a prefork worker
    register_demo(world)
    ai = patient_in_arm(world, "ai")
    with celery_worker(connection.settings_dict, queues=("inference",), pool="prefork"):
        store_phantom(ai, tmp_path / "ai", seed=1004, rows=256)
        job = wait_for(lambda: InferenceJob.objects.filter(patient=ai).first(), 30, what="the AI job")
        wait_for(lambda: InferenceJob.objects.get(pk=job.pk).status == "failed", 120, what="the time limit")
    job.refresh_from_db()
    assert job.failure_reason == "Stopped after the time limit of 2 s."
    assert not AIContour.objects.filter(job=job).exists()
