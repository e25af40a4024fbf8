"""The blinded review through the API: random codes and orders, edit, approve with the password, guess the
arm, and the correction metrics stored on approval."""

import uuid

import numpy as np
import pydicom
import pytest

from delineation.labelmap_codec import decode, encode
from panel_review import codes
from panel_review.indices import blinding_indices
from panel_review.models import CorrectionMetrics, ReviewAssignment
from tests.conftest import PASSWORD, World, make_user
from tests.panel_review.helpers import submitted_case
from trial.models import AuditEntry
from trial.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    return World()


def save(client, code, labels, base):
    return client.post(
        f"/api/v1/review/cases/{code}/versions/",
        data=encode(labels),
        content_type="application/vnd.contourtrial.labelmap",
        HTTP_X_BASE_VERSION=str(base),
        HTTP_X_SAVE_ID=str(uuid.uuid4()),
    )


def test_codes_are_random_and_each_member_has_an_own_stable_order():
    drawn = {codes.new_review_code() for _ in range(2000)}
    assert len(drawn) == 2000 and all(c.startswith("R-") and len(c) == 11 for c in drawn)
    secret = b"s" * 32
    order_a = sorted(drawn, key=lambda c: codes.order_key(secret, 1, c))
    order_b = sorted(drawn, key=lambda c: codes.order_key(secret, 2, c))
    assert order_a != order_b and order_a == sorted(drawn, key=lambda c: codes.order_key(secret, 1, c))
    assert order_a != sorted(drawn, key=lambda c: codes.order_key(b"t" * 32, 1, c))


def test_submission_opens_a_review_under_a_random_code(world, tmp_path, django_capture_on_commit_callbacks):
    review, case, _ = submitted_case(world, "manual", tmp_path / "p", 41, django_capture_on_commit_callbacks)
    assert review.code.startswith("R-") and case.patient.trial_number not in review.code
    assignment = review.assignments.get()
    assert assignment.reviewer == world.panel and assignment.kind == "review"
    listing = world.client(world.panel).get("/api/v1/review/cases/").json()
    assert listing == [
        {"code": review.code, "kind": "review", "status": "to_review", "url": f"/review/cases/{review.code}/"}
    ]


def test_review_edit_approve_guess_and_metrics(world, tmp_path, django_capture_on_commit_callbacks, eager_tasks):
    review, case, submitted = submitted_case(world, "manual", tmp_path / "p", 42, django_capture_on_commit_callbacks)
    client = world.client(world.panel)
    base = f"/api/v1/review/cases/{review.code}/"
    manifest = client.get(base).json()
    assert manifest["mode"] == "review" and manifest["title"] == review.code and manifest["latest_version"] is None
    start = client.get(manifest["urls"]["start_labelmap"])
    assert np.array_equal(decode(start.content, case.truth.shape, 1), submitted)
    image = client.get(f"{base}images/ct/0/")
    dataset = pydicom.dcmread(__import__("io").BytesIO(image.content))
    assert str(dataset.PatientID) == review.code and str(dataset.PatientName) == review.code
    approved = case.truth.astype(np.uint8)  # the panel restores the two slices the physician left out
    assert save(client, review.code, approved, base=0).status_code == 201
    assert save(client, review.code, approved, base=0).status_code == 409
    assert client.post(base + "guess/", {"guess": "ai"}, format="json").status_code == 409  # approve first
    assert client.post(base + "approve/", {"password": "wrong", "version": 1}, format="json").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(base + "approve/", {"password": PASSWORD, "version": 1}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["signature"]["statement"] == "I approve this GTV for treatment planning"
    review.refresh_from_db()
    assert review.approved_version.number == 1 and review.approved_version.stream.startswith("review:")
    assert save(client, review.code, approved, base=1).status_code == 409  # locked
    assert client.post(base + "guess/", {"guess": "manual"}, format="json").json() == {"guess": "manual"}
    assert client.post(base + "guess/", {"guess": "ai"}, format="json").status_code == 409  # the first answer counts
    metrics = CorrectionMetrics.objects.get(case=review)
    assert metrics.comparison == "submitted_vs_approved"
    values = metrics.values
    assert (
        values["edited_slices"] == 2
        and 0 < values["dice"] < 1
        and values["volume_after_cc"] > values["volume_before_cc"]
    )
    assert AuditEntry.objects.filter(model="panel_review.reviewassignment", reveals_allocation=False).exists()

    # the approved GTV goes to the planning system re-identified (data managers only)
    url = f"/api/v1/review/approved/{case.patient.pk}/rtstruct/"
    assert client.get(url).status_code == 403
    exported = world.client(world.data_manager).get(url)
    assert exported.status_code == 200 and exported["Content-Type"] == "application/dicom"
    rtstruct = pydicom.dcmread(__import__("io").BytesIO(exported.content))
    assert rtstruct.Modality == "RTSTRUCT" and str(rtstruct.PatientID) != case.patient.trial_number
    assert AuditEntry.objects.filter(action="export_reidentified", actor_username=world.data_manager.username).exists()
    indices = blinding_indices(world.trial)  # what the statisticians' report shows (coded A/B while blinded)
    assert indices["answers"] == 1 and indices["bang"]["manual"].correct == 1 and indices["bang"]["ai"].n == 0


def test_ai_arm_case_also_gets_ai_comparisons(world, tmp_path, django_capture_on_commit_callbacks, eager_tasks):
    review, _, submitted = submitted_case(world, "ai", tmp_path / "p", 43, django_capture_on_commit_callbacks)
    client = world.client(world.panel)
    assert save(client, review.code, submitted, base=0).status_code == 201  # approved unchanged
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/api/v1/review/cases/{review.code}/approve/", {"password": PASSWORD, "version": 1}, format="json")
    rows = {m.comparison: m.values for m in CorrectionMetrics.objects.filter(case=review)}
    assert set(rows) == {"submitted_vs_approved", "ai_vs_submitted", "ai_vs_approved"}
    assert rows["submitted_vs_approved"]["dice"] == 1 and rows["submitted_vs_approved"]["edited_slices"] == 0
    assert rows["ai_vs_submitted"]["edited_slices"] == 2 and rows["ai_vs_submitted"]["dice"] < 1


def test_two_reviews_then_a_consensus(world, tmp_path, django_capture_on_commit_callbacks, eager_tasks):
    world.trial.panel_reviews_per_case = 2
    world.trial.save()
    second, third = make_user("panel_two", Role.PANEL), make_user("panel_three", Role.PANEL)
    review, case, submitted = submitted_case(world, "manual", tmp_path / "p", 44, django_capture_on_commit_callbacks)
    reviewers = list(review.assignments.values_list("reviewer__username", flat=True))
    assert len(reviewers) == 2
    users = {u.username: u for u in (world.panel, second, third)}
    for name in reviewers:
        client = world.client(users[name])
        assert save(client, review.code, submitted, base=0).status_code == 201
        with django_capture_on_commit_callbacks(execute=True):
            answer = client.post(f"/api/v1/review/cases/{review.code}/approve/", {"password": PASSWORD, "version": 1},
                                 format="json")  # fmt: skip
        assert answer.status_code == 200
    review.refresh_from_db()
    assert review.approved_version is None and not CorrectionMetrics.objects.exists()
    consensus = review.assignments.get(kind="consensus")
    assert consensus.reviewer.username not in reviewers  # the third member
    client = world.client(consensus.reviewer)
    assert client.get(f"/api/v1/review/cases/{review.code}/").json()["latest_version"] is None
    assert save(client, review.code, case.truth.astype(np.uint8), base=0).status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/api/v1/review/cases/{review.code}/approve/", {"password": PASSWORD, "version": 1}, format="json")
    review.refresh_from_db()
    assert review.approved_version.stream == f"review:{consensus.pk}"
    assert CorrectionMetrics.objects.get(case=review).values["edited_slices"] == 2


@pytest.mark.parametrize("who", ["other_panel", "physician", "coordinator", "statistician"])
def test_nobody_else_reaches_a_review_case(world, tmp_path, django_capture_on_commit_callbacks, who):
    review, _, _ = submitted_case(world, "manual", tmp_path / "p", 45, django_capture_on_commit_callbacks)
    user = make_user("other_panel", Role.PANEL) if who == "other_panel" else getattr(world, who)
    client = world.client(user)
    base = f"/api/v1/review/cases/{review.code}/"
    expected = 404 if who == "other_panel" else 403
    for url in (base, base + "start/", base + "images/ct/0/"):
        assert client.get(url).status_code == expected, url
    assert client.post(base + "approve/", {"password": PASSWORD, "version": 1}, format="json").status_code == expected
    assert ReviewAssignment.objects.filter(approved_at__isnull=False).count() == 0
