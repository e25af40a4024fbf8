"""The physician's case through the API: manifest, autosave versions (409 when stale), restore, submission."""

import json
import uuid

import numpy as np
import pytest

from delineation import labelmap_codec
from delineation.models import ContourVersion, Submission
from delineation.signals import contour_submitted
from tests.conftest import PASSWORD, World
from tests.delineation.helpers import case_in_arm, post_labelmap, store_proposal
from tests.inference.conftest import patient_in_arm
from trial.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    return World()


@pytest.fixture
def manual(world, tmp_path):
    return case_in_arm(world, "manual", tmp_path / "phantom")


def labels_of(response, shape):
    return labelmap_codec.decode(response.content, tuple(shape), 1)


def test_manifest_lists_images_in_slice_order_with_suv_factors(world, manual):
    response = world.client(world.physician).get(f"/api/v1/delineation/cases/{manual.patient.pk}/")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["ct"]["shape"] == list(manual.truth.shape)
    instances = list(manual.ct.instances.order_by("slice_index").values_list("pk", flat=True))
    assert data["ct"]["image_ids"] == [
        f"wadouri:http://testserver/api/v1/imaging/instances/{pk}/dicom/" for pk in instances
    ]
    assert data["pet"] and all(f > 0 for f in data["pet"]["suv_factors"])
    assert data["segments"] == [{"index": 1, "label": "GTVp", "color": [230, 41, 41]}]
    assert data["latest_version"] is None and data["locked"] is False and data["status"] == "ready"


def test_autosave_versions_count_up_and_a_stale_save_gets_409(world, manual):
    client = world.client(world.physician)
    labels = manual.truth.astype(np.uint8)
    first = post_labelmap(client, manual.patient, labels, base=0)
    assert first.status_code == 201, first.content
    assert first.json()["number"] == 1
    assert first.json()["volumes_cc"]["1"] == pytest.approx(labels.sum() * np.prod(manual.ct.spacing) / 1000, rel=1e-6)
    labels[labels.shape[0] // 2, :5, :5] = 1
    second = post_labelmap(client, manual.patient, labels, base=1)
    assert second.status_code == 201 and second.json()["number"] == 2
    other_tab = post_labelmap(client, manual.patient, manual.truth.astype(np.uint8), base=1)
    assert other_tab.status_code == 409
    assert other_tab.json()["code"] == "stale" and other_tab.json()["latest_version"] == 2
    assert "version 2 has been saved since" in other_tab.json()["detail"]
    assert ContourVersion.objects.filter(patient=manual.patient).count() == 2


def test_autosave_from_a_logged_in_page_passes_the_csrf_check(world, manual):
    """As the browser sends it: session cookie, CSRF token header, raw labelmap body."""
    from django.middleware.csrf import _get_new_csrf_string
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.physician)
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    url = f"/api/v1/delineation/cases/{manual.patient.pk}/versions/"
    body = labelmap_codec.encode(manual.truth.astype(np.uint8))
    headers = {"HTTP_X_BASE_VERSION": "0", "HTTP_X_SAVE_ID": str(uuid.uuid4())}
    refused = client.post(url, data=body, content_type="application/vnd.contourtrial.labelmap", **headers)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    saved = client.post(url, data=body, content_type="application/vnd.contourtrial.labelmap",
                        HTTP_X_CSRFTOKEN=token, **headers)  # fmt: skip
    assert saved.status_code == 201, saved.content
    wrong_type = client.post(url, data=body, content_type="application/octet-stream", HTTP_X_CSRFTOKEN=token,
                             HTTP_X_BASE_VERSION="1", HTTP_X_SAVE_ID=str(uuid.uuid4()))  # fmt: skip
    assert wrong_type.status_code == 415


def test_a_retried_save_returns_its_version_instead_of_a_second_one(world, manual):
    client = world.client(world.physician)
    save_id = uuid.uuid4()
    labels = manual.truth.astype(np.uint8)
    assert post_labelmap(client, manual.patient, labels, base=0, save_id=save_id).status_code == 201
    again = post_labelmap(client, manual.patient, labels, base=0, save_id=save_id)
    assert again.status_code == 200 and again.json()["number"] == 1
    assert ContourVersion.objects.filter(patient=manual.patient).count() == 1


def test_reopening_restores_each_version_voxel_for_voxel(world, manual):
    client = world.client(world.physician)
    rng = np.random.default_rng(5)
    saved = []
    for number in (1, 2):
        labels = (rng.random(manual.truth.shape) < 0.01).astype(np.uint8)
        assert post_labelmap(client, manual.patient, labels, base=number - 1).status_code == 201
        saved.append(labels)
    latest = client.get(f"/api/v1/delineation/cases/{manual.patient.pk}/labelmap/")
    assert latest.status_code == 200 and latest["X-Contour-Version"] == "2"
    assert np.array_equal(labels_of(latest, manual.truth.shape), saved[1])
    first = client.get(f"/api/v1/delineation/cases/{manual.patient.pk}/labelmap/?version=1")
    assert np.array_equal(labels_of(first, manual.truth.shape), saved[0])
    version = ContourVersion.objects.get(patient=manual.patient, number=2)
    assert version.sha256 == labelmap_codec.labelmap_sha256(saved[1], 1)
    entry = AuditEntry.objects.filter(model="delineation.contourversion", object_pk=str(version.pk)).get()
    assert entry.actor_username == world.physician.username and entry.action == "create"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not a contour", "not zlib"),
        ("short", "voxels"),
        ("segment", "not a segment"),
        (b"", "no labelmap"),
    ],
)
def test_a_bad_labelmap_is_refused_naming_the_problem_and_nothing_is_stored(world, manual, body, problem):
    shape = manual.truth.shape
    if body == "short":
        body = labelmap_codec.encode(np.zeros((shape[0] - 1, *shape[1:]), np.uint8))
    elif body == "segment":
        body = labelmap_codec.encode(np.full(shape, 2, np.uint8))
    response = world.client(world.physician).post(
        f"/api/v1/delineation/cases/{manual.patient.pk}/versions/", data=body,
        content_type="application/vnd.contourtrial.labelmap", HTTP_X_BASE_VERSION="0", HTTP_X_SAVE_ID=str(uuid.uuid4()),
    )  # fmt: skip
    assert response.status_code == 400
    assert problem in response.json()["detail"]
    assert not ContourVersion.objects.exists()


def test_submit_needs_the_password_then_locks_the_case(world, manual, django_capture_on_commit_callbacks):
    client = world.client(world.physician)
    assert post_labelmap(client, manual.patient, manual.truth.astype(np.uint8), base=0).status_code == 201
    url = f"/api/v1/delineation/cases/{manual.patient.pk}/submit/"
    wrong = client.post(url, {"password": "not it", "version": 1}, format="json")
    assert wrong.status_code == 403 and not Submission.objects.exists()
    assert AuditEntry.objects.filter(action="signature_refused", actor_username=world.physician.username).exists()
    stale = client.post(url, {"password": PASSWORD, "version": 7}, format="json")
    assert stale.status_code == 409 and stale.json()["latest_version"] == 1
    received = []
    contour_submitted.connect(lambda **kw: received.append(kw["patient"].pk), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            ok = client.post(url, {"password": PASSWORD, "version": 1}, format="json")
    finally:
        contour_submitted.disconnect(dispatch_uid="t")
    assert ok.status_code == 200, ok.content
    assert ok.json()["signature"]["statement"] == "I submit this GTV as my delineation"
    assert ok.json()["signature"]["signer_name"] == world.physician.get_full_name()
    assert received == [manual.patient.pk]
    submission = Submission.objects.get()
    assert submission.version.number == 1 and submission.signature.signer == world.physician
    locked = post_labelmap(client, manual.patient, manual.truth.astype(np.uint8), base=1)
    assert locked.status_code == 409 and locked.json()["code"] == "locked"
    again = client.post(url, {"password": PASSWORD, "version": 1}, format="json")
    assert again.status_code == 409
    manifest = client.get(f"/api/v1/delineation/cases/{manual.patient.pk}/").json()
    assert manifest["locked"] is True and manifest["status"] == "submitted"
    assert client.post(f"/api/v1/delineation/cases/{manual.patient.pk}/sessions/").status_code == 409


def test_interpolation_fills_the_slices_between_two_drawn_slices(world, manual):
    shape = manual.truth.shape
    labels = np.zeros(shape, np.uint8)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    disc = (yy - shape[1] // 2) ** 2 + (xx - shape[2] // 2) ** 2 <= 10**2
    labels[10][disc] = 1
    labels[20][disc] = 1
    response = world.client(world.physician).post(
        f"/api/v1/delineation/cases/{manual.patient.pk}/interpolate/?segment=1",
        data=labelmap_codec.encode(labels), content_type="application/vnd.contourtrial.labelmap",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    filled = labels_of(response, shape)
    assert all(filled[z].sum() == pytest.approx(disc.sum(), rel=0.1) for z in range(11, 20))
    assert filled[:10].sum() == 0 and filled[21:].sum() == 0
    assert not ContourVersion.objects.exists()


def test_ai_case_starts_from_the_stored_proposal(world, tmp_path):
    case = case_in_arm(world, "ai", tmp_path / "phantom", seed=22)
    store_proposal(world, case, case.truth)
    client = world.client(world.physician)
    manifest = client.get(f"/api/v1/delineation/cases/{case.patient.pk}/").json()
    assert manifest["proposal"]["model"] == "demo-gtv 1.0"
    mask = client.get(manifest["proposal"]["labelmap"])
    assert np.array_equal(labels_of(mask, case.truth.shape), case.truth.astype(np.uint8))
    uncertainty = client.get(manifest["proposal"]["uncertainty"])
    import zlib

    levels = np.frombuffer(zlib.decompress(uncertainty.content), np.uint8).reshape(case.truth.shape)
    assert set(np.unique(levels[case.truth])) == {51} and levels[~case.truth].max() == 0


def test_events_stored_as_sent_give_the_times(world, manual):
    client = world.client(world.physician)
    session = client.post(f"/api/v1/delineation/cases/{manual.patient.pk}/sessions/").json()["id"]
    events = [{"t": t * 1000, "kind": kind} for t, kind in
              [(0, "open"), (1, "edit"), (3, "edit"), (70, "pointer"), (71, "edit"), (90, "pause"), (400, "resume"),
               (401, "key")]]  # fmt: skip
    answer = client.post(f"/api/v1/delineation/sessions/{session}/events/", {"events": events[:4]}, format="json")
    assert answer.status_code == 202 and answer.json() == {"stored": 4}
    beacon = client.post(f"/api/v1/delineation/sessions/{session}/events/", {"events": json.dumps(events[4:])})
    assert beacon.status_code == 202
    times = client.get(f"/api/v1/delineation/cases/{manual.patient.pk}/timing/").json()
    # gaps 1, 2, (67 idle), 1, 19, (paused 310), 1 → 24 s active; edits at 1, 3 (≤ 10 s apart) and 71 → 2 s
    assert times["active_seconds"] == pytest.approx(24)
    assert times["editing_seconds"] == pytest.approx(2)
    assert times["wall_seconds"] is None and times["sessions"] == 1


def test_a_retried_event_batch_is_stored_once(world, manual, tmp_path):
    """The page resends a batch whose answer it lost with the same X-Event-Batch (a beacon: `batch_id`)."""
    from delineation.models import SessionEvent

    client = world.client(world.physician)
    session = client.post(f"/api/v1/delineation/cases/{manual.patient.pk}/sessions/").json()["id"]
    url = f"/api/v1/delineation/sessions/{session}/events/"
    batch, batch_id = [{"t": 1, "kind": "open"}, {"t": 2, "kind": "edit"}], str(uuid.uuid4())
    for _ in range(2):
        answer = client.post(url, {"events": batch}, format="json", HTTP_X_EVENT_BATCH=batch_id)
        assert answer.status_code == 202 and answer.json() == {"stored": 2}
    beacon_id = str(uuid.uuid4())
    for _ in range(2):
        beacon = client.post(url, {"events": json.dumps([{"t": 3, "kind": "close"}]), "batch_id": beacon_id})
        assert beacon.status_code == 202 and beacon.json() == {"stored": 1}
    assert SessionEvent.objects.filter(session_id=session).count() == 3

    other = case_in_arm(world, "manual", tmp_path / "other", seed=24)
    other_session = client.post(f"/api/v1/delineation/cases/{other.patient.pk}/sessions/").json()["id"]
    reused = client.post(f"/api/v1/delineation/sessions/{other_session}/events/", {"events": batch}, format="json",
                         HTTP_X_EVENT_BATCH=batch_id)  # fmt: skip
    assert reused.status_code == 400 and "another session" in reused.json()["detail"]
    bad = client.post(url, {"events": batch}, format="json", HTTP_X_EVENT_BATCH="not-a-uuid")
    assert bad.status_code == 400 and "X-Event-Batch must be a UUID" in bad.json()["detail"]
    assert SessionEvent.objects.count() == 3


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        ([{"t": -1, "kind": "edit"}], "`t` must be"),
        ([{"t": 1, "kind": "teleport"}], "kind 'teleport'"),
        ({"t": 1}, "must be a list"),
    ],
)
def test_bad_events_are_refused_and_none_of_the_batch_is_kept(world, manual, events, problem):
    client = world.client(world.physician)
    session = client.post(f"/api/v1/delineation/cases/{manual.patient.pk}/sessions/").json()["id"]
    batch = [{"t": 5, "kind": "edit"}, *events] if isinstance(events, list) else events
    answer = client.post(f"/api/v1/delineation/sessions/{session}/events/", {"events": batch}, format="json")
    assert answer.status_code == 400 and problem in answer.json()["detail"]
    from delineation.models import SessionEvent

    assert not SessionEvent.objects.exists()


def test_worklist_shows_each_case_with_its_status(world, manual, tmp_path):
    waiting = case_in_arm(world, "ai", tmp_path / "ai", seed=23)
    no_images = patient_in_arm(world, "manual")
    client = world.client(world.physician)
    client.force_login(world.physician)
    statuses = {item["trial_number"]: item["status"] for item in client.get("/api/v1/delineation/cases/").json()}
    assert statuses[manual.patient.trial_number] == "ready"
    assert statuses[waiting.patient.trial_number] == "waiting_ai"
    assert statuses[no_images.trial_number] == "waiting_images"
    others = set(statuses) - {manual.patient.trial_number, waiting.patient.trial_number}
    assert all(statuses[n] == "waiting_images" for n in others)  # patients randomised on the way
    page = client.get("/delineation/")
    assert page.status_code == 200 and b"Waiting for the AI proposal" in page.content


def test_a_trial_with_gtvp_and_gtvn_saves_both_segments(world, manual):
    trial = manual.patient.trial
    trial.gtv_segments = ["GTVp", "GTVn"]
    trial.save()
    client = world.client(world.physician)
    manifest = client.get(f"/api/v1/delineation/cases/{manual.patient.pk}/").json()
    assert [s["label"] for s in manifest["segments"]] == ["GTVp", "GTVn"]
    labels = manual.truth.astype(np.uint8)
    labels[0, :4, :4] = 2  # a node far from the primary
    saved = post_labelmap(client, manual.patient, labels, base=0)
    assert saved.status_code == 201, saved.content
    voxel_cc = np.prod(manual.ct.spacing) / 1000
    assert saved.json()["volumes_cc"] == {
        "1": pytest.approx(manual.truth.sum() * voxel_cc),
        "2": pytest.approx(16 * voxel_cc),
    }
    back = client.get(f"/api/v1/delineation/cases/{manual.patient.pk}/labelmap/")
    assert np.array_equal(labelmap_codec.decode(back.content, manual.truth.shape, 2), labels)
