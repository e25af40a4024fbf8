"""The coordinator's and data manager's pages, driven as a person would with a session login."""

import pytest
from django.test import Client

from tests.conftest import ELIGIBLE, PASSWORD, enrol
from trial.models import Allocation, AuditEntry, Patient

pytestmark = pytest.mark.django_db


def _login(user) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, "login failed"
    return client


def test_login_page_and_failed_login_is_audited(world):
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "coord_aar", "password": "wrong"})
    assert response.status_code == 200 and b"Please enter a correct username and password" in response.content
    assert AuditEntry.objects.filter(action="login_failed", object_repr="coord_aar").exists()


def test_coordinator_enrols_and_randomises_through_the_pages(world):
    client = _login(world.coordinator)
    home = client.get("/")
    assert b"Enrol a patient" in home.content
    form = {
        "site": "AAR", "hospital_id": "PAGE-1", "physician": "phys_aar", "consent_date": "2026-11-29",
        "consent_form_version": "v1.0", "stratum_subsite": "larynx", "stratum_t_stage": "T1-2",
        **{f"elig_{code}": "yes" if ok else "no" for code, ok in ELIGIBLE.items()},
    }  # fmt: skip
    response = client.post("/patients/enrol/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    patient = Patient.objects.get()
    page = client.get(f"/patients/{patient.pk}/").content.decode()
    assert "Sign and randomise" in page and "Allocation" not in page

    client.post(f"/patients/{patient.pk}/strata/", {"stratum_subsite": "larynx", "stratum_t_stage": "T3-4",
                                                    "reason": "Re-staged at tumour board"})  # fmt: skip
    patient.refresh_from_db()
    assert patient.strata["t_stage"] == "T3-4"
    client.post(f"/patients/{patient.pk}/randomise/", {"password": PASSWORD})
    allocation = Allocation.objects.get()
    page = client.get(f"/patients/{patient.pk}/").content.decode()
    assert allocation.arm_label in page and "Sign and randomise" not in page
    assert allocation.arm_label in client.get("/patients/").content.decode()


def test_enrol_page_shows_the_reason_for_refusal(world):
    client = _login(world.coordinator)
    form = {
        "site": "AAR", "hospital_id": "PAGE-2", "physician": "phys_aar", "consent_date": "2026-11-29",
        "consent_form_version": "v1.0", "stratum_subsite": "larynx", "stratum_t_stage": "T1-2",
        **{f"elig_{code}": "yes" for code in ELIGIBLE},
    }  # fmt: skip
    response = client.post("/patients/enrol/", form)
    assert response.status_code == 200
    assert "Exclusion criterion E1 applies" in response.content.decode()
    assert not Patient.objects.exists()


def test_lookup_page_opens_the_patient(world):
    patient = enrol(world.trial, world.coordinator, world.physician, "LOOK-1")
    client = _login(world.coordinator)
    response = client.post("/patients/lookup/", {"hospital_id": "look 1"})
    assert response.status_code == 302 and response["Location"] == f"/patients/{patient.pk}/"


def test_physician_sees_own_patients_and_arm_but_cannot_randomise(world):
    mine = enrol(world.trial, world.coordinator, world.physician, "A1")
    other = enrol(world.trial, world.coordinator_ode, world.physician_ode, "B1", site="ODE")
    client = _login(world.physician)
    listing = client.get("/patients/").content.decode()
    assert mine.trial_number in listing and other.trial_number not in listing
    assert client.get(f"/patients/{other.pk}/").status_code == 404
    assert client.post(f"/patients/{mine.pk}/randomise/", {"password": PASSWORD}).status_code == 403
    refused = client.get("/patients/enrol/")
    assert refused.status_code == 403 and "Your role may not open this page" in refused.content.decode()


def test_data_manager_corrects_through_the_page_and_reads_the_audit_trail(world):
    from trial.services.randomisation import randomise

    patient = enrol(world.trial, world.coordinator, world.physician, "DM-1")
    randomise(actor=world.coordinator, patient=patient, password=PASSWORD)
    client = _login(world.data_manager)
    response = client.post(
        f"/patients/{patient.pk}/correct/",
        {"factor": "subsite", "level": "larynx", "reason": "Pathology report: larynx", "password": PASSWORD},
    )
    assert response.status_code == 302
    page = client.get(f"/patients/{patient.pk}/").content.decode()
    assert "Pathology report: larynx" in page and "oropharynx → larynx" in page
    audit = client.get("/audit/").content.decode()
    assert "trial.stratumcorrection" in audit and "Pathology report: larynx" in audit


def test_panel_home_shows_no_patient_data(world):
    enrol(world.trial, world.coordinator, world.physician, "PANEL-1")
    client = _login(world.panel)
    home = client.get("/").content.decode()
    assert "Expert panel" in home and "HN-0001" not in home


def test_api_docs_render_for_signed_in_users(world):
    client = _login(world.statistician)
    assert client.get("/api/docs/").status_code == 200
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/patients/{id}/randomise/" in paths and "/api/v1/audit/entries/" in paths
    for path in paths.values():
        for operation in path.values():
            assert operation.get("summary") or operation.get("description"), operation.get("operationId")
