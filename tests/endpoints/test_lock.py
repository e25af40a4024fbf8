"""The database lock: it waits for every approved case's metrics, seals the endpoint data (exports and the
report are derived from the sealed frame, checked against its hash), and refuses every later change to the
trial's data, through the API as through the services."""

import hashlib

import numpy as np
import pandas as pd
import pytest
from django.core.files.storage import default_storage

from delineation.models import ContourVersion, SessionEvent
from endpoints import report, services
from inference import services as inference
from panel_review.models import ReviewCase
from panel_review.tasks import measure_corrections
from tests.conftest import PASSWORD, enrol
from tests.delineation.helpers import case_in_arm, post_labelmap
from tests.panel_review.helpers import submitted_case
from tests.panel_review.test_review_flow import save
from trial.models import StaffProfile
from trial.services.corrections import correct_stratum
from trial.services.enrolment import enrol as enrol_service
from trial.services.errors import Conflict
from trial.services.randomisation import randomise

pytestmark = pytest.mark.django_db


def _approve_unmeasured(world, tmp_path, capture):
    """A manual-arm case approved by the panel whose measurement task has not run (its on-commit is dropped)."""
    review, case, _ = submitted_case(world, "manual", tmp_path / "late", 75, capture)
    client = world.client(world.panel)
    assert save(client, review.code, case.truth.astype(np.uint8), 0).status_code == 201
    with capture(execute=False):
        answer = client.post(f"/api/v1/review/cases/{review.code}/approve/", {"password": PASSWORD, "version": 1},
                             format="json")  # fmt: skip
    assert answer.status_code == 200, answer.content
    return review


def test_lock_waits_for_metrics_then_refuses_every_change(trial_data, tmp_path, django_capture_on_commit_callbacks):
    world, cases, waiting = trial_data
    capture = django_capture_on_commit_callbacks
    unmeasured = _approve_unmeasured(world, tmp_path, capture)
    open_review, _case, _ = submitted_case(world, "manual", tmp_path / "open", 76, capture)  # not approved
    drawing = case_in_arm(world, "manual", tmp_path / "drawing", seed=77)  # not submitted
    physician = world.client(world.physician)
    session = physician.post(f"/api/v1/delineation/cases/{drawing.patient.pk}/sessions/").json()["id"]
    enrolled = enrol(world.trial, world.coordinator, world.physician, "LOCK-LATE")  # enrolled, not randomised

    with pytest.raises(Conflict, match=unmeasured.patient.trial_number):
        services.lock(actor=world.data_manager, trial=world.trial, password=PASSWORD)
    assert not default_storage.exists("locks") or not default_storage.listdir("locks")[1], "nothing written"
    measure_corrections.delay(unmeasured.pk)
    data_lock = services.lock(actor=world.data_manager, trial=world.trial, password=PASSWORD)
    world.trial.refresh_from_db()
    assert world.trial.data_locked_at == data_lock.locked_at
    versions, events = ContourVersion.objects.count(), SessionEvent.objects.count()

    def refused(response):
        assert response.status_code == 409 and "locked" in response.json()["detail"], response.content

    refused(post_labelmap(physician, drawing.patient, drawing.truth.astype(np.uint8), 0))
    refused(physician.post(f"/api/v1/delineation/sessions/{session}/events/",
                           {"events": [{"t": 5, "kind": "edit"}]}, format="json"))  # fmt: skip
    refused(physician.post(f"/api/v1/delineation/cases/{drawing.patient.pk}/sessions/"))
    panel = world.client(world.panel)
    refused(save(panel, open_review.code, drawing.truth.astype(np.uint8), 0))
    with pytest.raises(Conflict, match="locked"):
        randomise(actor=world.coordinator, patient=enrolled, password=PASSWORD)
    with pytest.raises(Conflict, match="locked"):
        enrol_service(
            actor=world.coordinator, trial=world.trial, site=enrolled.site, hospital_id="LOCK-NEW",
            physician=world.physician, eligibility=enrolled.eligibility, consent_date=enrolled.consent.consent_date,
            consent_form_version=enrolled.consent.form_version, strata={"subsite": "oropharynx", "t_stage": "T1-2"},
        )  # fmt: skip
    with pytest.raises(Conflict, match="locked"):
        correct_stratum(actor=world.data_manager, patient=waiting, factor="subsite", level="larynx",
                        reason="wrong subsite recorded", password=PASSWORD)  # fmt: skip
    ai_patient = next(c.patient for _r, c in cases if c.patient.allocation.arm == "ai")
    with pytest.raises(Conflict, match="locked"):
        inference.rerun(actor=world.data_manager, patient=ai_patient, reason="new model after lock")
    assert (ContourVersion.objects.count(), SessionEvent.objects.count()) == (versions, events)
    assert not ReviewCase.objects.get(pk=open_review.pk).approved_at


def test_exports_after_lock_come_from_the_sealed_frame(trial_data, tmp_path):
    world, cases, _ = trial_data
    data_lock = services.lock(actor=world.data_manager, trial=world.trial, password=PASSWORD)
    blinded = tmp_path / "blinded.csv"
    services.export(actor=world.statistician, trial=world.trial, fmt="csv", path=blinded)
    assert hashlib.sha256(blinded.read_bytes()).hexdigest() == data_lock.export_sha256, "the CSV made at lock"

    profile = StaffProfile.objects.get(user=world.physician)  # a live change after the lock ...
    profile.experience_years = 30
    profile.save()
    services.unblind(actor=world.data_manager, trial=world.trial, password=PASSWORD, reason="final analysis")
    unblinded = tmp_path / "unblinded.parquet"
    services.export(actor=world.statistician, trial=world.trial, fmt="parquet", path=unblinded)
    frame = pd.read_parquet(unblinded).set_index("trial_id")
    for _review, case in cases:  # ... does not reach the analysis: the sealed frame does
        row = frame.loc[case.patient.trial_number]
        assert row.physician_experience_y == 12 and row.allocation == case.patient.allocation.arm
    html = report.generate(actor=world.statistician, trial=world.trial, out_dir=tmp_path / "report")
    assert "AI-assisted" in html.read_text()

    with default_storage.open(data_lock.sealed_file.name, "wb") as handle:  # the sealed file altered
        handle.write(b"PAR1 tampered")
    with pytest.raises(Conflict, match="sha256"):
        services.export(actor=world.statistician, trial=world.trial, fmt="csv", path=tmp_path / "again.csv")


def test_a_failed_report_leaves_the_folder_as_it_was(trial_data, tmp_path, monkeypatch):
    world, _cases, _ = trial_data
    out = tmp_path / "reports" / "final"
    out.mkdir(parents=True)
    (out / "report.html").write_text("the previous report")

    def no_chromium(html, pdf):
        raise RuntimeError("Chromium is needed for the PDF and was not found")

    monkeypatch.setattr(report, "to_pdf", no_chromium)
    with pytest.raises(RuntimeError, match="Chromium"):
        report.generate(actor=world.statistician, trial=world.trial, out_dir=out)
    assert [p.name for p in out.iterdir()] == ["report.html"] and (out / "report.html").read_text().startswith("the")
    assert [p.name for p in out.parent.iterdir()] == ["final"], "no temporary folder left behind"


@pytest.mark.django_db(transaction=True)
def test_a_change_in_flight_holds_off_the_lock():
    """A change holds the trial row FOR KEY SHARE until it commits; the lock takes it FOR UPDATE, so it waits
    (here: NOWAIT from a second connection fails) and sees the change, while enrolment and randomisation (FOR NO
    KEY UPDATE) go on; once the change commits the row is free."""
    from django.db import OperationalError, connection, connections, transaction

    from tests.conftest import World
    from trial.services.trials import require_unlocked

    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    world = World()
    sql = "SELECT 1 FROM trial_trial WHERE id = %s FOR UPDATE NOWAIT"
    other = connections.create_connection("default")
    try:
        with transaction.atomic():
            require_unlocked(world.trial.pk, "saving a contour")
            with other.cursor() as cursor:  # enrolment and randomisation (NO KEY UPDATE) are not held up ...
                cursor.execute(sql.replace("FOR UPDATE", "FOR NO KEY UPDATE"), [world.trial.pk])
                other.rollback() if not other.get_autocommit() else None
            with other.cursor() as cursor, pytest.raises(OperationalError, match="could not obtain lock"):
                cursor.execute(sql, [world.trial.pk])  # ... the lock (FOR UPDATE) is
        other.rollback() if not other.get_autocommit() else None
        with other.cursor() as cursor:
            cursor.execute(sql, [world.trial.pk])
            assert cursor.fetchone() == (1,)
    finally:
        other.close()
