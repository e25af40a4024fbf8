"""The coordinator and data manager dashboards: own-site cases with stage and overdue flag, accrual,
the data manager's worklist, and who may open them."""

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from delineation.cases import CaseStatus
from endpoints import dashboards
from imaging.models import QuarantinedStudy
from inference.models import InferenceJob
from tests.conftest import PASSWORD, enrol
from trial.audit.recorder import audit_context
from trial.models import Patient
from trial.services.errors import NotAllowed
from trial.services.randomisation import randomise

pytestmark = pytest.mark.django_db

COORDINATOR_URL = "/dashboards/coordinator/"
DATA_MANAGER_URL = "/dashboards/data-manager/"


def page(user, url):
    client = Client()
    client.force_login(user)
    return client.get(url)


def backdate_enrolment(patient, days):
    """Patient is audited and refuses bulk updates, so the test moves the enrolment time in SQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE trial_patient SET enrolled_at = %s WHERE id = %s",
            [timezone.now() - dt.timedelta(days=days), patient.pk],
        )


@pytest.fixture
def cases(world):
    aar = enrol(world.trial, world.coordinator, world.physician, "AAR-1")
    randomise(actor=world.coordinator, patient=aar, password=PASSWORD)
    waiting = enrol(world.trial, world.coordinator, world.physician, "AAR-2", subsite="larynx")
    ode = enrol(world.trial, world.coordinator_ode, world.physician_ode, "ODE-1", site="ODE")
    return aar, waiting, ode


def test_coordinator_sees_own_site_cases_with_stage_and_accrual(world, cases):
    aar, waiting, ode = cases
    response = page(world.coordinator, COORDINATOR_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert aar.trial_number in html and waiting.trial_number in html
    assert ode.trial_number not in html
    assert "Waiting for images" in html and "Awaiting randomisation" in html
    assert "<svg" in html
    assert response.context["accrual"]["total"] == 1
    assert response.context["accrual"]["sites"] == [{"code": "AAR", "enrolled": 2, "randomised": 1}]
    assert [r.trial_number for r in response.context["rows"]] == [aar.trial_number, waiting.trial_number]
    assert response.context["overdue_count"] == 0


def test_overdue_flag_after_approval_due_days(world, cases):
    aar = cases[0]
    backdate_enrolment(aar, world.trial.approval_due_days + 2)
    response = page(world.coordinator, COORDINATOR_URL)
    row = next(r for r in response.context["rows"] if r.trial_number == aar.trial_number)
    assert row.overdue and row.age_days == world.trial.approval_due_days + 2
    assert response.context["overdue_count"] == 1
    assert "overdue-flag" in response.content.decode()


def test_data_manager_sees_all_sites(world, cases):
    response = page(world.data_manager, COORDINATOR_URL)
    assert response.status_code == 200
    assert {r.trial_number for r in response.context["rows"]} == {p.trial_number for p in cases}


@pytest.mark.parametrize("who", ["panel", "statistician", "physician"])
def test_coordinator_dashboard_refused_to_other_roles(world, who):
    assert page(getattr(world, who), COORDINATOR_URL).status_code == 403


@pytest.mark.parametrize("who", ["panel", "statistician", "physician", "coordinator"])
def test_data_manager_dashboard_refused_to_other_roles(world, who):
    assert page(getattr(world, who), DATA_MANAGER_URL).status_code == 403


def test_data_manager_sees_failed_job_and_quarantined_study(world, cases):
    aar = cases[0]
    with audit_context(world.data_manager):
        InferenceJob(patient=aar, status=InferenceJob.Status.FAILED, trigger="imaging_complete",
                     failure_reason="CUDA out of memory").save()  # fmt: skip
        QuarantinedStudy(source="upload", folder="quarantine/1", file_count=3, modalities="CT",
                         reason="Unknown patient id").save()  # fmt: skip
        QuarantinedStudy(source="upload", folder="quarantine/2", file_count=1, reason="Resolved already",
                         status=QuarantinedStudy.Status.DISCARDED).save()  # fmt: skip
    with pytest.raises(NotAllowed):  # a wrong password records a refusal
        randomise(actor=world.coordinator, patient=cases[1], password="wrong")
    response = page(world.data_manager, DATA_MANAGER_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "CUDA out of memory" in html and aar.trial_number in html
    assert "Unknown patient id" in html and "Resolved already" not in html
    assert response.context["quarantined"][0].reason == "Unknown patient id"
    assert [entry.actor_username for entry, _ in response.context["refusals"]] == ["coord_aar"]


def test_case_stage_names_the_panel_not_a_member(world, cases, monkeypatch):
    aar = Patient.objects.get(pk=cases[0].pk)
    since = timezone.now()
    monkeypatch.setattr(dashboards, "status_of", lambda patient: CaseStatus("submitted", since))
    assert dashboards.case_stage(aar, approved=False) == ("Review", "expert panel", since)
    assert dashboards.case_stage(aar, approved=True)[0] == "Approved"


def test_cumulative_by_day():
    d1, d2 = dt.date(2026, 1, 1), dt.date(2026, 1, 3)
    assert dashboards.cumulative_by_day([d2, d1, d1]) == [(d1, 2), (d2, 3)]
