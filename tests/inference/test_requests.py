"""Who gets an AI proposal job, and who may see it: AI arm only, once, re-runs by data managers with a reason."""

import pytest

from inference.models import InferenceJob
from inference.services import jobs_visible_to, request_proposal, rerun
from tests.conftest import PASSWORD, enrol
from trial.models import AuditEntry
from trial.services.errors import Conflict, InvalidInput, NotAllowed
from trial.services.randomisation import randomise

from .conftest import patient_in_arm, register_demo, store_phantom

pytestmark = pytest.mark.django_db


def _images(patient, tmp_path, django_capture_on_commit_callbacks, seed=11):
    with django_capture_on_commit_callbacks(execute=True):
        store_phantom(patient, tmp_path / f"p{patient.pk}", seed=seed, rows=96, slices=30)


def test_ai_arm_gets_one_job_when_imaging_completes_manual_arm_none(
    world, tmp_path, django_capture_on_commit_callbacks
):
    register_demo(world)
    ai = patient_in_arm(world, "ai")
    manual = patient_in_arm(world, "manual")
    _images(ai, tmp_path, django_capture_on_commit_callbacks)
    _images(manual, tmp_path, django_capture_on_commit_callbacks, seed=12)
    job = InferenceJob.objects.get(patient=ai)
    assert job.status == "queued" and job.trigger == "imaging_complete"
    assert job.ct_series.modality == "CT" and job.pet_series.modality == "PT"
    assert job.model_version.name == "demo-gtv"
    assert not InferenceJob.objects.filter(patient=manual).exists()
    assert request_proposal(manual, trigger="imaging_complete") is None
    # the event again (a redelivered signal, randomisation after imaging): still one job
    assert request_proposal(ai, trigger="imaging_complete") is None
    assert InferenceJob.objects.filter(patient=ai).count() == 1
    entry = AuditEntry.objects.filter(model="inference.inferencejob", object_pk=str(job.pk)).first()
    assert entry is not None and entry.reveals_allocation is True


def test_images_before_randomisation_start_the_job_at_randomisation(
    world, tmp_path, django_capture_on_commit_callbacks
):
    register_demo(world)
    for attempt in range(12):
        patient = enrol(world.trial, world.coordinator, world.physician, f"EARLY-{attempt}")
        _images(patient, tmp_path, django_capture_on_commit_callbacks, seed=20 + attempt)
        assert not InferenceJob.objects.filter(patient=patient).exists()  # no arm yet
        with django_capture_on_commit_callbacks(execute=True):
            arm = randomise(actor=world.coordinator, patient=patient, password=PASSWORD).arm
        jobs = InferenceJob.objects.filter(patient=patient)
        if arm == "ai":
            assert jobs.get().trigger == "randomised"
            return
        assert not jobs.exists()
    raise AssertionError("no AI allocation")


def test_without_an_active_model_the_job_fails_with_a_reason(world, tmp_path, django_capture_on_commit_callbacks):
    ai = patient_in_arm(world, "ai")
    _images(ai, tmp_path, django_capture_on_commit_callbacks)
    job = InferenceJob.objects.get(patient=ai)
    assert job.status == "failed" and "No AI model is active" in job.failure_reason
    body = world.client(world.coordinator).get(f"/api/v1/inference/jobs/?patient={ai.pk}").json()
    assert body["results"][0]["failure_reason"] == job.failure_reason


def test_rerun_by_data_managers_with_a_reason(world, tmp_path, django_capture_on_commit_callbacks):
    ai = patient_in_arm(world, "ai")
    manual = patient_in_arm(world, "manual")
    _images(ai, tmp_path, django_capture_on_commit_callbacks)
    register_demo(world)
    with pytest.raises(NotAllowed):
        rerun(actor=world.coordinator, patient=ai, reason="model now active")
    with pytest.raises(InvalidInput, match="reason"):
        rerun(actor=world.data_manager, patient=ai, reason="")
    with pytest.raises(Conflict, match="not in the AI-assisted arm"):
        rerun(actor=world.data_manager, patient=manual, reason="x")
    response = world.client(world.data_manager).post(
        "/api/v1/inference/jobs/rerun/", {"patient": ai.pk, "reason": "model now active"}, format="json"
    )
    assert response.status_code == 201, response.content
    job = InferenceJob.objects.get(pk=response.json()["id"])
    assert job.trigger == "rerun" and job.status == "queued" and job.requested_by == world.data_manager
    created = AuditEntry.objects.get(model="inference.inferencejob", object_pk=str(job.pk), action="create")
    assert created.reason == "model now active" and created.actor_username == "dm"
    with pytest.raises(Conflict, match="queued or running"):
        rerun(actor=world.data_manager, patient=ai, reason="again")


def test_jobs_reach_only_those_who_may_see_the_arm(world, tmp_path, django_capture_on_commit_callbacks, client):
    register_demo(world)
    ai = patient_in_arm(world, "ai")
    _images(ai, tmp_path, django_capture_on_commit_callbacks)
    job = InferenceJob.objects.get(patient=ai)
    assert set(jobs_visible_to(world.physician)) == {job}
    assert set(jobs_visible_to(world.coordinator)) == {job}
    for user in (world.panel, world.physician_ode, world.coordinator_ode):
        assert not jobs_visible_to(user).exists()
        client = world.client(user)
        assert client.get("/api/v1/inference/jobs/").json()["results"] == []
        assert client.get(f"/api/v1/inference/jobs/{job.pk}/").status_code == 404
    for user in (world.panel, world.physician_ode):
        client.force_login(user)
        assert client.get(f"/inference/patients/{ai.pk}/").status_code in (403, 404)
    client.force_login(world.physician)
    assert "Queued" in client.get(f"/inference/patients/{ai.pk}/").content.decode()
