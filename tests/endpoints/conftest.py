import numpy as np
import pytest

from tests.conftest import PASSWORD, World
from tests.inference.conftest import patient_in_arm
from tests.panel_review.helpers import eager_tasks, submitted_case  # noqa: F401  (eager_tasks: a fixture)
from tests.panel_review.test_review_flow import save
from trial.models import StaffProfile


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ROOT = tmp_path / "models"


@pytest.fixture
def trial_data(tmp_path, django_capture_on_commit_callbacks, eager_tasks):  # noqa: F811
    world = World()
    StaffProfile(user=world.physician, experience_years=12).save()
    cases = []
    for arm, seed in (("ai", 71), ("manual", 72)):
        review, case, _ = submitted_case(world, arm, tmp_path / arm, seed, django_capture_on_commit_callbacks)
        client = world.client(world.panel)
        session = client.post(f"/api/v1/review/cases/{review.code}/sessions/").json()["id"]
        batch = {"events": [{"t": 0, "kind": "open"}, {"t": 1500, "kind": "edit"}, {"t": 4000, "kind": "edit"}]}
        client.post(f"/api/v1/review/sessions/{session}/events/", batch, format="json")
        assert save(client, review.code, case.truth.astype(np.uint8), 0).status_code == 201
        with django_capture_on_commit_callbacks(execute=True):
            client.post(f"/api/v1/review/cases/{review.code}/approve/", {"password": PASSWORD, "version": 1},
                        format="json")  # fmt: skip
        client.post(f"/api/v1/review/cases/{review.code}/guess/", {"guess": "dont_know"}, format="json")
        cases.append((review, case))
    waiting = patient_in_arm(world, "manual")  # randomised, no images yet: intention to treat keeps them
    return world, cases, waiting
