"""A job that cannot run records why, for the coordinator to see, and is not retried; the task runs eagerly
here (Celery's own apply), the same code a worker runs."""

import pytest

from inference.models import AIContour, InferenceJob
from inference.registry import model_folder
from inference.tasks import propose_gtv

from .conftest import patient_in_arm, register_demo, store_phantom

pytestmark = pytest.mark.django_db


def test_a_changed_model_file_fails_the_job_with_the_reason(world, tmp_path, django_capture_on_commit_callbacks):
    model = register_demo(world)
    patient = patient_in_arm(world, "ai")
    with django_capture_on_commit_callbacks(execute=True):
        store_phantom(patient, tmp_path / "case", seed=1007, rows=96, slices=30)
    weights = model_folder(model) / "gtv_unet.pt"
    weights.write_bytes(weights.read_bytes()[:-10])  # truncated on disk after registration
    job = InferenceJob.objects.get(patient=patient)
    assert propose_gtv.apply(args=[job.pk]).get() == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and "gtv_unet.pt" in job.failure_reason and "sha256" in job.failure_reason
    assert job.attempts == 1 and not AIContour.objects.filter(job=job).exists()
    body = world.client(world.coordinator).get(f"/api/v1/inference/jobs/{job.pk}/").json()
    assert body["status"] == "failed" and body["failure_reason"] == job.failure_reason and body["stage"] == "failed"
    assert propose_gtv.apply(args=[job.pk]).get() == "nothing to do"  # a redelivery does not run it again
