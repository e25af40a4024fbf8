"""Acceptance: logged in as a panel member, every page and API endpoint the panel can reach — its own pages and
every path of the OpenAPI schema, filled with the ids and codes of real cases — carries no arm, physician,
AI, model or timing field or value of any case."""

import json
import re

import numpy as np
import pytest
from rest_framework.test import APIClient

from delineation.models import ContourVersion, DelineationSession, SessionEvent
from inference.models import AIContour, InferenceJob
from panel_review.models import ReviewCase
from tests.conftest import PASSWORD, World
from tests.panel_review.helpers import submitted_case
from tests.panel_review.test_review_flow import save
from tests.trial.test_role_crawl import _routes
from trial.models import Patient
from trial.randomisation.design import ARM_LABELS

pytestmark = pytest.mark.django_db

FORBIDDEN_KEYS = {
    "arm", "allocation", "physician", "physician_name", "model", "model_version", "model_sha256", "proposal",
    "uncertainty", "probability", "case_uncertainty", "wall_seconds", "active_seconds", "editing_seconds",
    "opened_at", "trial_number", "author", "forward_seconds", "total_seconds", "idle_cutoff_seconds",
}  # fmt: skip


def _keys(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            _keys(value, found)
    elif isinstance(node, list):
        for value in node:
            _keys(value, found)
    return found


@pytest.fixture
def trial_with_reviews(tmp_path, django_capture_on_commit_callbacks, eager_tasks):
    world = World()
    ai, ai_case, _ = submitted_case(world, "ai", tmp_path / "ai", 51, django_capture_on_commit_callbacks)
    # the panel's edit of the AI-arm case happens to restore the AI proposal exactly
    manual, _, labels = submitted_case(world, "manual", tmp_path / "manual", 52, django_capture_on_commit_callbacks)
    panel = APIClient()
    panel.force_login(world.panel)
    for review in (ai, manual):  # the panel works on both: sessions, events, versions; approves and guesses one
        base = f"/api/v1/review/cases/{review.code}/"
        session = panel.post(base + "sessions/").json()["id"]
        panel.post(f"/api/v1/review/sessions/{session}/events/", {"events": [{"t": 5, "kind": "edit"}]}, format="json")

        assert (
            save(panel, review.code, labels if review is manual else ai_case.truth.astype(np.uint8), 0).status_code
            == 201
        )
    with django_capture_on_commit_callbacks(execute=True):
        panel.post(f"/api/v1/review/cases/{manual.code}/approve/", {"password": PASSWORD, "version": 1}, format="json")
    panel.post(f"/api/v1/review/cases/{manual.code}/guess/", {"guess": "ai"}, format="json")
    return world, panel, [ai, manual]


def _forbidden_values(world) -> set[str]:
    values = set(ARM_LABELS.values()) | {"AI-assisted arm", "demo-gtv", "torchscript"}
    for patient in Patient.objects.all():
        values.add(patient.trial_number)
    for user in (world.physician, world.physician_ode):
        values |= {user.get_full_name(), f'"{user.username}"'}
    for contour in AIContour.objects.all():
        values |= {contour.model_sha256, contour.mask_sha256}
    return values


def _urls(cases):
    ids = set()
    for model in (Patient, ContourVersion, DelineationSession, SessionEvent, InferenceJob, AIContour, ReviewCase):
        ids |= set(model.objects.values_list("pk", flat=True))
    ids |= {1, 2}
    codes = [c.code for c in cases]
    urls = {"/", "/review/"} | {f"/review/cases/{code}/" for code in codes}
    for route, _name in _routes():
        for code in codes:
            filled = route.replace("{code}", code).replace("{kind}", "ct").replace("{index}", "0")
            filled = filled.replace("{what}", "endpoints").replace("{fmt}", "csv")
            urls |= {filled.replace("{pk}", str(i)) for i in ids} if "{pk}" in filled else {filled}
    return urls


def _schema_urls(panel, cases, ids):
    schema = panel.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    urls = set()
    for path, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        for code in [c.code for c in cases]:
            filled = re.sub(r"{code}", code, path)
            filled = filled.replace("{kind}", "ct").replace("{index}", "0")
            holes = re.findall(r"{(\w+)}", filled)
            urls |= {re.sub(r"{\w+}", str(i), filled) for i in ids} if holes else {filled}
    return urls


def test_the_panel_sees_no_arm_physician_ai_model_or_time(trial_with_reviews):
    world, panel, cases = trial_with_reviews
    forbidden = _forbidden_values(world)
    ids = sorted(
        set(Patient.objects.values_list("pk", flat=True))
        | set(ContourVersion.objects.values_list("pk", flat=True))
        | {1, 2}
    )
    urls = _urls(cases) | _schema_urls(panel, cases, ids)
    reached = 0
    for url in sorted(urls):
        if url.startswith(("/api/schema", "/api/docs", "/admin", "/static")):
            continue  # the schema describes endpoints, not cases; the admin is for staff
        response = panel.get(url)
        assert response.status_code < 500, (url, response.status_code)
        if response.status_code != 200:
            continue
        reached += 1
        body = response.content.decode("latin-1")
        # The trial's design (/api/v1/trials/) names its two arms; that is public and about no case.
        design = url.startswith("/api/v1/trials/")
        for value in forbidden - (set(ARM_LABELS.values()) if design else set()):
            assert value not in body, f"{url} shows {value!r} to the panel"
        if response["Content-Type"].startswith("application/json"):
            keys = _keys(json.loads(body), set())
            assert not keys & FORBIDDEN_KEYS, (url, keys & FORBIDDEN_KEYS)
    assert reached >= 15, reached  # the review pages, manifests, labelmaps and images were really fetched
