"""The server decides who reaches a case, and a manual-arm case carries nothing from any model."""

import numpy as np
import pytest

from tests.conftest import World
from tests.delineation.helpers import case_in_arm, post_labelmap, store_proposal

pytestmark = pytest.mark.django_db

AI_WORDS = ("proposal", "uncertainty", "demo-gtv", "model", "torchscript", "inference", "probability", "AI ")


@pytest.fixture
def world(db):
    return World()


def test_manual_arm_case_page_and_responses_carry_nothing_from_a_model(world, tmp_path):
    case = case_in_arm(world, "manual", tmp_path / "phantom")
    # Even with a stray AI contour in the database for this patient, nothing of it may reach the physician.
    store_proposal(world, case, case.truth)
    client = world.client(world.physician)
    client.force_login(world.physician)  # the page is a Django view: a session login
    base = f"/api/v1/delineation/cases/{case.patient.pk}/"
    assert post_labelmap(client, case.patient, case.truth.astype(np.uint8), base=0).status_code == 201
    session = client.post(base + "sessions/").json()["id"]
    client.post(f"/api/v1/delineation/sessions/{session}/events/", {"events": [{"t": 1, "kind": "open"}]},
                format="json")  # fmt: skip
    responses = {
        url: client.get(url)
        for url in (
            base,
            base + "versions/",
            base + "timing/",
            base + "labelmap/",
            f"/delineation/cases/{case.patient.pk}/",
        )
    }
    for url, response in responses.items():
        assert response.status_code == 200, url
        text = response.content.decode("latin-1")
        for word in AI_WORDS:
            assert word not in text, f"{word!r} in {url}"
    for url in (base + "proposal/labelmap/", base + "proposal/uncertainty/"):
        assert client.get(url).status_code == 404
    row = next(r for r in client.get("/api/v1/delineation/cases/").json() if r["id"] == case.patient.pk)
    assert row["status"] == "in_progress" and "ai" not in str(row).lower().replace("waiting", "")


@pytest.mark.parametrize("who", ["physician_ode", "coordinator", "panel", "statistician", "data_manager"])
def test_only_the_assigned_physician_opens_or_changes_a_case(world, tmp_path, who):
    case = case_in_arm(world, "manual", tmp_path / "phantom")
    owner = world.client(world.physician)
    assert post_labelmap(owner, case.patient, case.truth.astype(np.uint8), base=0).status_code == 201
    session = owner.post(f"/api/v1/delineation/cases/{case.patient.pk}/sessions/").json()["id"]
    client = world.client(getattr(world, who))
    client.force_login(getattr(world, who))
    base = f"/api/v1/delineation/cases/{case.patient.pk}/"
    for url in (
        base,
        base + "labelmap/",
        base + "versions/",
        base + "timing/",
        f"/delineation/cases/{case.patient.pk}/",
    ):
        assert client.get(url).status_code == 403, url
    assert post_labelmap(client, case.patient, case.truth.astype(np.uint8), base=1).status_code == 403
    assert client.post(base + "submit/", {"password": "x", "version": 1}, format="json").status_code == 403
    assert client.post(base + "sessions/").status_code == 403
    events = client.post(f"/api/v1/delineation/sessions/{session}/events/", {"events": []}, format="json")
    assert events.status_code in (403, 404)
    assert client.get("/api/v1/delineation/cases/").status_code in (200, 403)
    if who == "physician_ode":
        assert client.get("/api/v1/delineation/cases/").json() == []
        assert "not assigned to you" in client.get(base).json()["detail"]


def test_anonymous_gets_nothing(world, tmp_path, client):
    case = case_in_arm(world, "manual", tmp_path / "phantom")
    assert client.get(f"/api/v1/delineation/cases/{case.patient.pk}/").status_code in (401, 403)
    assert client.get(f"/delineation/cases/{case.patient.pk}/").status_code == 302


def test_a_physician_who_is_also_on_the_panel_may_not_delineate(world, tmp_path):
    """Panel members are blinded whatever else they are: the server refuses them the (unblinded) workstation."""
    from django.contrib.auth.models import Group

    case = case_in_arm(world, "manual", tmp_path / "phantom")
    world.physician.groups.add(Group.objects.get_or_create(name="panel")[0])
    world.physician._contourtrial_roles = None
    answer = world.client(world.physician).get(f"/api/v1/delineation/cases/{case.patient.pk}/")
    assert answer.status_code == 403 and "blinded" in answer.json()["detail"]
