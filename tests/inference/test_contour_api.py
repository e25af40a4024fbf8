"""The stored proposal through the API: raw volumes for the viewer, DICOM SEG exports (checked by dciodvfy),
the page with status and provenance; nothing of it for people who may not see the arm."""

import io

import highdicom as hd
import numpy as np
import pytest

from inference import runner
from inference.models import AIContour, InferenceJob
from inference.storage import read_map, read_mask
from tests.imaging.synthetic_ct import dciodvfy_errors

from .conftest import patient_in_arm, register_demo, store_phantom

pytestmark = pytest.mark.django_db


@pytest.fixture
def contour(world, tmp_path, django_capture_on_commit_callbacks):
    register_demo(world)
    patient = patient_in_arm(world, "ai")
    with django_capture_on_commit_callbacks(execute=True):
        store_phantom(patient, tmp_path / "case", seed=1006, rows=128, slices=48)
    job = InferenceJob.objects.get(patient=patient)
    assert runner.run(job.pk, worker="in-test") == "stored"  # the task's work, in this process
    assert runner.run(job.pk, worker="in-test") == "nothing to do"  # a second delivery changes nothing
    return AIContour.objects.get(job=job)


def test_volumes_for_the_viewer(world, contour):
    client = world.client(world.physician)
    response = client.get(f"/api/v1/inference/contours/{contour.pk}/volume/?kind=mask")
    assert response.status_code == 200 and response["X-Shape"] == ",".join(map(str, contour.shape))
    mask = np.frombuffer(response.content, dtype=np.uint8).reshape(contour.shape)
    assert np.array_equal(mask.astype(bool), read_mask(contour)) and mask.any()
    response = client.get(f"/api/v1/inference/contours/{contour.pk}/volume/?kind=uncertainty")
    entropy = np.frombuffer(response.content, dtype="<f4").reshape(contour.shape)
    assert np.allclose(entropy, read_map(contour, "uncertainty")) and 0 < entropy.max() <= 1
    assert client.get(f"/api/v1/inference/contours/{contour.pk}/volume/?kind=x").status_code == 400


@pytest.mark.dicom_tools
def test_seg_exports_pass_dciodvfy(world, contour, tmp_path):
    for kind, expected in (("mask", "BINARY"), ("probability", "FRACTIONAL")):
        response = world.client(world.coordinator).get(f"/api/v1/inference/contours/{contour.pk}/seg/?kind={kind}")
        assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
        path = tmp_path / f"{kind}.dcm"
        path.write_bytes(response.content)
        assert dciodvfy_errors(path) == [], kind
        seg = hd.seg.segread(io.BytesIO(response.content))
        assert seg.SegmentationType == expected
        assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
        assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "demo-gtv"


def test_nothing_for_those_who_may_not_see_the_arm(world, contour, client):
    for user in (world.panel, world.physician_ode, world.coordinator_ode):
        api = world.client(user)
        assert api.get(f"/api/v1/inference/contours/{contour.pk}/").status_code == 404
        assert api.get(f"/api/v1/inference/contours/{contour.pk}/seg/").status_code == 404
        assert api.get("/api/v1/inference/contours/").json()["results"] == []
    client.force_login(world.physician)
    page = client.get(f"/inference/patients/{contour.patient.pk}/").content.decode()
    assert "Current proposal" in page and contour.model_sha256[:12] in page and "demo-gtv:1.0" in page
