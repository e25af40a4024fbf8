"""Annotated stratum corrections by a data manager: reason, signature, the original kept."""

import pytest

from tests.conftest import PASSWORD, enrol
from trial.models import AuditEntry, StratumCorrection
from trial.services.randomisation import randomise

pytestmark = pytest.mark.django_db


@pytest.fixture
def randomised(world):
    patient = enrol(world.trial, world.coordinator, world.physician, "H1", subsite="larynx", t_stage="T1-2")
    randomise(actor=world.coordinator, patient=patient, password=PASSWORD)
    return patient


def _correct(world, patient, user=None, **body):
    payload = {"factor": "t_stage", "level": "T3-4", "reason": "CT staging report re-read: T3", "password": PASSWORD}
    payload.update(body)
    return world.client(user or world.data_manager).post(
        f"/api/v1/patients/{patient.pk}/strata-corrections/", payload, format="json"
    )


def test_correction_is_annotated_signed_and_audited_with_reason(world, randomised):
    response = _correct(world, randomised)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["original_level"] == "T1-2" and body["corrected_level"] == "T3-4"
    assert body["signature"]["statement"].startswith("I correct")
    randomised.refresh_from_db()
    assert randomised.allocation.strata["t_stage"] == "T1-2", "the randomised value stays"
    assert randomised.effective_strata()["t_stage"] == "T3-4"
    entry = AuditEntry.objects.filter(model="trial.stratumcorrection", action="create").get()
    assert entry.reason == "CT staging report re-read: T3" and entry.actor_username == "dm"
    detail = world.client(world.coordinator).get(f"/api/v1/patients/{randomised.pk}/").json()
    assert detail["strata"]["t_stage"] == "T3-4" and detail["allocation"]["strata_as_randomised"]["t_stage"] == "T1-2"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"reason": "typo"}, 400, "reason"),
        ({"level": "T1-2"}, 400, "already 'T1-2'"),
        ({"level": "T5"}, 400, "'T5' is not a level"),
        ({"factor": "hpv"}, 400, "Unknown stratification factor"),
        ({"factor": "site", "level": "ODE"}, 400, "cannot be corrected"),
        ({"password": "nope"}, 403, "password is not correct"),
    ],
)
def test_bad_corrections_are_refused(world, randomised, body, status, message):
    response = _correct(world, randomised, **body)
    assert response.status_code == status and message in response.json()["detail"]
    assert not StratumCorrection.objects.exists()


def test_only_data_managers_correct_and_only_after_randomisation(world, randomised):
    assert _correct(world, randomised, user=world.coordinator).status_code == 403
    assert _correct(world, randomised, user=world.statistician).status_code == 403
    unrandomised = enrol(world.trial, world.coordinator, world.physician, "H2")
    response = _correct(world, unrandomised)
    assert response.status_code == 409 and "not randomised yet" in response.json()["detail"]
