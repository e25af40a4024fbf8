"""Enrolment and randomisation through the API, and every kind of bad input the issue names."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.conftest import ELIGIBLE, PASSWORD, enrol
from trial.models import Allocation, AuditEntry, Consent, Patient, Signature
from trial.services.randomisation import randomise

pytestmark = pytest.mark.django_db


def _enrol_body(**overrides):
    body = {
        "site": "AAR",
        "hospital_id": "0101901234",
        "physician": "phys_aar",
        "eligibility": dict(ELIGIBLE),
        "consent_date": "2026-11-30",
        "consent_form_version": "v1.1",
        "strata": {"subsite": "larynx", "t_stage": "T3-4"},
    }
    body.update(overrides)
    return body


def _counts():
    return (Patient.objects.count(), Consent.objects.count(), Allocation.objects.count(), AuditEntry.objects.count())


def test_coordinator_enrols_then_randomises_and_sees_the_allocation_only_after(world):
    api = world.client(world.coordinator)
    response = api.post("/api/v1/patients/", _enrol_body(), format="json")
    assert response.status_code == 201, response.json()
    patient = response.json()
    assert patient["trial_number"] == "HN-0001"
    assert patient["status"] == "enrolled" and patient["allocation"] is None
    assert patient["strata"] == {"site": "AAR", "subsite": "larynx", "t_stage": "T3-4"}
    assert "hospital_id" not in patient and "hospital_id_hash" not in patient

    response = api.post(f"/api/v1/patients/{patient['id']}/randomise/", {"password": PASSWORD}, format="json")
    assert response.status_code == 201, response.json()
    allocation = response.json()["allocation"]
    assert allocation["arm"] in ("ai", "manual") and allocation["sequence_number"] == 1
    assert allocation["signature"]["signer_name"] == "Coord_Aar Tester"
    assert allocation["signature"]["statement"].startswith("I randomise")
    assert "stratum_position" not in allocation
    stored = Allocation.objects.get()
    assert stored.signature.meaning == Signature.Meaning.RANDOMISE
    assert stored.strata == {"site": "AAR", "subsite": "larynx", "t_stage": "T3-4"}


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"consent_date": None, "consent_form_version": ""}, 400, "consent"),
        ({"consent_form_version": "v0.9"}, 400, "Consent form version 'v0.9' is not approved"),
        ({"consent_date": "2999-01-01"}, 400, "lies in the future"),
        ({"eligibility": {**ELIGIBLE, "E1": True}}, 400, "Exclusion criterion E1 applies"),
        ({"eligibility": {**ELIGIBLE, "I3": False}}, 400, "Inclusion criterion I3 is not met"),
        ({"eligibility": {"I1": True}}, 400, "Criterion I2"),
        ({"strata": {"subsite": "nasopharynx", "t_stage": "T1-2"}}, 400, "'nasopharynx' is not a level"),
        ({"strata": {"subsite": "larynx"}}, 400, "'t_stage' is missing"),
        ({"strata": {"subsite": "larynx", "t_stage": "T1-2", "site": "ODE"}}, 400, "must be the enrolling site AAR"),
        ({"physician": "phys_ode"}, 400, "does not work at site AAR"),
        ({"physician": "stats"}, 400, "is not a physician"),
        ({"physician": "nobody"}, 400, "No user 'nobody'"),
        ({"site": "ODE"}, 403, "You coordinate site(s) AAR, not ODE"),
        ({"hospital_id": "  "}, 400, "hospital_id"),
    ],
)
def test_bad_enrolment_is_refused_with_a_named_problem_and_nothing_written(world, overrides, status, message):
    before = _counts()
    response = world.client(world.coordinator).post("/api/v1/patients/", _enrol_body(**overrides), format="json")
    assert response.status_code == status, response.json()
    assert message.lower() in response.json()["detail"].lower()
    assert _counts() == before


def test_duplicate_hospital_id_is_a_conflict_naming_the_existing_patient(world):
    api = world.client(world.coordinator)
    assert api.post("/api/v1/patients/", _enrol_body(), format="json").status_code == 201
    before = _counts()
    response = api.post("/api/v1/patients/", _enrol_body(hospital_id="0101-901234"), format="json")
    assert response.status_code == 409
    assert "already enrolled in the trial as HN-0001" in response.json()["detail"]
    assert _counts() == before


def test_randomising_twice_is_refused_and_the_allocation_stays(world):
    patient = enrol(world.trial, world.coordinator, world.physician, "H1")
    api = world.client(world.coordinator)
    first = api.post(f"/api/v1/patients/{patient.pk}/randomise/", {"password": PASSWORD}, format="json").json()
    before = _counts()
    again = api.post(f"/api/v1/patients/{patient.pk}/randomise/", {"password": PASSWORD}, format="json")
    assert again.status_code == 409
    assert "already randomised" in again.json()["detail"] and "irreversible" in again.json()["detail"]
    assert _counts() == before
    assert Allocation.objects.get().arm == first["allocation"]["arm"]


def test_wrong_password_applies_no_signature_and_randomises_nothing(world):
    patient = enrol(world.trial, world.coordinator, world.physician, "H1")
    response = world.client(world.coordinator).post(
        f"/api/v1/patients/{patient.pk}/randomise/", {"password": "guess"}, format="json"
    )
    assert response.status_code == 403 and "password is not correct" in response.json()["detail"]
    assert not Allocation.objects.exists() and not Signature.objects.exists()
    assert AuditEntry.objects.filter(action="signature_refused", actor_username="coord_aar").exists()


def test_coordinator_of_another_site_can_neither_see_nor_randomise(world):
    patient = enrol(world.trial, world.coordinator, world.physician, "H1")
    other = world.client(world.coordinator_ode)
    assert other.get(f"/api/v1/patients/{patient.pk}/").status_code == 404
    response = other.post(f"/api/v1/patients/{patient.pk}/randomise/", {"password": PASSWORD}, format="json")
    assert response.status_code == 403
    assert "You coordinate site(s) ODE, not AAR" in response.json()["detail"]
    assert not Allocation.objects.exists()
    found = other.post("/api/v1/patients/lookup/", {"hospital_id": "H1"}, format="json")
    assert found.status_code == 403 and "not AAR" in found.json()["detail"]


def test_lookup_by_hospital_id_finds_own_patient(world):
    patient = enrol(world.trial, world.coordinator, world.physician, "0101901234")
    response = world.client(world.coordinator).post(
        "/api/v1/patients/lookup/", {"hospital_id": "0101 90-1234"}, format="json"
    )
    assert response.status_code == 200 and response.json()["trial_number"] == patient.trial_number
    missing = world.client(world.coordinator).post("/api/v1/patients/lookup/", {"hospital_id": "X"}, format="json")
    assert missing.status_code == 404 and "No patient with this hospital id" in missing.json()["detail"]


def test_physician_and_panel_may_not_enrol_or_randomise(world):
    patient = enrol(world.trial, world.coordinator, world.physician, "H1")
    for user in (world.physician, world.panel, world.statistician):
        api = world.client(user)
        assert api.post("/api/v1/patients/", _enrol_body(hospital_id="H9"), format="json").status_code == 403
        randomise = api.post(f"/api/v1/patients/{patient.pk}/randomise/", {"password": PASSWORD}, format="json")
        assert randomise.status_code == 403
    assert Patient.objects.count() == 1 and not Allocation.objects.exists()


def test_the_clear_hospital_id_is_stored_nowhere(world):
    from django.db import connection

    enrol(world.trial, world.coordinator, world.physician, "CLEAR-ID-4711")
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cursor.fetchall()]
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}" t WHERE upper(t::text) LIKE %s', ["%CLEARID4711%"])  # noqa: S608
            assert cursor.fetchone()[0] == 0, table
            cursor.execute(f'SELECT count(*) FROM "{table}" t WHERE upper(t::text) LIKE %s', ["%CLEAR-ID-4711%"])  # noqa: S608
            assert cursor.fetchone()[0] == 0, table


def test_coordinator_changes_strata_before_randomisation_with_a_reason(world):
    patient = enrol(world.trial, world.coordinator, world.physician, "S1", subsite="larynx", t_stage="T1-2")
    api = world.client(world.coordinator)
    url = f"/api/v1/patients/{patient.pk}/strata/"
    body = {"strata": {"subsite": "larynx", "t_stage": "T3-4"}, "reason": "MRI shows cartilage invasion"}
    response = api.post(url, body, format="json")
    assert response.status_code == 200 and response.json()["strata"]["t_stage"] == "T3-4"
    entry = AuditEntry.objects.filter(model="trial.patient", action="update").latest("seq")
    assert entry.reason == "MRI shows cartilage invasion"
    assert entry.changes["strata"][0]["t_stage"] == "T1-2" and entry.changes["strata"][1]["t_stage"] == "T3-4"

    refused = api.post(url, {**body, "reason": "x"}, format="json")
    assert refused.status_code == 400 and "reason" in refused.json()["detail"]
    bad_level = api.post(
        url, {"strata": {"subsite": "lung", "t_stage": "T3-4"}, "reason": "a good reason"}, format="json"
    )
    assert bad_level.status_code == 400 and "'lung' is not a level" in bad_level.json()["detail"]

    randomise = api.post(f"/api/v1/patients/{patient.pk}/randomise/", {"password": PASSWORD}, format="json")
    assert randomise.json()["allocation"]["strata_as_randomised"]["t_stage"] == "T3-4"
    frozen = api.post(
        url, {"strata": {"subsite": "larynx", "t_stage": "T1-2"}, "reason": "changed my mind"}, format="json"
    )
    assert frozen.status_code == 409 and "frozen" in frozen.json()["detail"]


def test_only_statisticians_and_data_managers_see_the_method(world):
    for user, sees in ((world.coordinator, False), (world.physician, False), (world.panel, False),
                       (world.statistician, True), (world.data_manager, True)):  # fmt: skip
        trial = world.client(user).get(f"/api/v1/trials/{world.trial.pk}/").json()
        assert ("randomisation_method" in trial) is sees
        assert "block_sizes" not in trial and "seed" not in trial


def test_the_patient_list_costs_the_same_queries_for_three_patients_as_for_six(world):
    """The patients API and page ask who may see which arm once per response, not once per patient."""
    api, page = world.client(world.coordinator), Client()
    page.force_login(world.coordinator)
    page.get("/patients/")  # the session's first request renews it (trial/security/sessions.py): not counted
    counts = []
    for batch in range(2):
        for n in range(3):
            patient = enrol(world.trial, world.coordinator, world.physician, f"Q{batch}{n}")
            randomise(actor=world.coordinator, patient=patient, password=PASSWORD)
        for client, url in ((api, "/api/v1/patients/"), (page, "/patients/")):
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            assert response.status_code == 200
            counts.append(len(queries))
    api_rows = api.get("/api/v1/patients/").json()["results"]
    assert len(api_rows) == 6 and all(row["allocation"] for row in api_rows)
    assert counts[:2] == counts[2:], counts
