"""The endpoint dataset from a small real trial: every format reads back to the database's values, the
codebook covers every column, nothing reveals the arm before lock and unblinding, and after them it does."""

import hashlib

import pandas as pd
import pytest
from django.core.management import call_command

from endpoints import dataset, formats, services
from endpoints.models import ArmCoding, DataLock
from panel_review.models import CorrectionMetrics
from tests.conftest import PASSWORD
from trial.models import AuditEntry
from trial.services.errors import Conflict, NotAllowed

pytestmark = pytest.mark.django_db


def test_blinded_dataset_holds_the_database_values(trial_data):
    world, cases, waiting = trial_data
    frame, book = dataset.build(world.trial, unblinded=False)
    assert list(frame.columns) == book.names  # the codebook covers every column, in order
    randomised = set(world.trial.patients.filter(status="randomised").values_list("trial_number", flat=True))
    assert set(frame.trial_id) == randomised and waiting.trial_number in randomised
    coding = ArmCoding.objects.get(trial=world.trial)
    for review, case in cases:
        row = frame.set_index("trial_id").loc[case.patient.trial_number]
        assert row.allocation == coding.code_of(case.patient.allocation.arm)
        metrics = CorrectionMetrics.objects.get(case=review, comparison="submitted_vs_approved").values
        assert row.sa_dice == pytest.approx(metrics["dice"]) and row.sa_edited_slices == metrics["edited_slices"]
        assert row.sa_apl_1mm == pytest.approx(metrics["apl_mm"]["1"])
        assert row.physician_experience_y == 12 and row.physician.startswith("PHY-")
        assert row.blinding_guess == "dont_know" and pd.isna(row.missing_reason)
        assert row.review_active_s == pytest.approx(4.0)  # gaps 1.5 s and 2.5 s between the panel's events
    assert frame.set_index("trial_id").loc[waiting.trial_number].missing_reason == "required images not complete"
    assert not any(c.startswith(("as_", "aa_", "ai_")) for c in frame.columns)  # they would reveal the coding


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_every_format_reads_back_the_same_values_and_shows_no_arm(trial_data, tmp_path, fmt):
    world, _cases, _ = trial_data
    path = tmp_path / f"endpoints.{fmt}"
    services.export(actor=world.statistician, trial=world.trial, fmt=fmt, path=path)
    frame, book = dataset.build(world.trial, unblinded=False)
    back = formats.read(fmt, path, book)
    for variable in book:  # the formats keep times to the millisecond (Stata, SPSS) or better
        if variable.kind == "datetime":
            for table in (back, frame):
                table[variable.name] = [
                    None if pd.isna(t) else pd.Timestamp(t).floor("s") for t in table[variable.name]
                ]
    pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_exact=False, rtol=1e-9)
    codebook = pd.read_csv(tmp_path / "endpoints-codebook.csv")
    assert list(codebook["name"]) == list(frame.columns)
    assert set(back.allocation) <= {"A", "B"} and not any(c.startswith(("as_", "aa_", "ai_")) for c in back.columns)
    assert AuditEntry.objects.filter(action="export_endpoints", actor_username=world.statistician.username).exists()


def test_lock_then_unblind_reveals_the_arms(trial_data, tmp_path):
    world, cases, _ = trial_data
    with pytest.raises(NotAllowed):
        services.export(actor=world.physician, trial=world.trial, fmt="csv", path=tmp_path / "x.csv")
    with pytest.raises(Conflict, match="only after the database is locked"):
        services.unblind(actor=world.data_manager, trial=world.trial, password=PASSWORD, reason="analysis")
    with pytest.raises(NotAllowed):
        services.lock(actor=world.data_manager, trial=world.trial, password="wrong")
    data_lock = services.lock(actor=world.data_manager, trial=world.trial, password=PASSWORD)
    with data_lock.export_file.open("rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == data_lock.export_sha256
    assert data_lock.signature.statement.startswith("I lock the trial database")
    with pytest.raises(Conflict):
        services.lock(actor=world.data_manager, trial=world.trial, password=PASSWORD)
    with pytest.raises(NotAllowed):
        services.unblind(actor=world.statistician, trial=world.trial, password=PASSWORD, reason="analysis")
    services.unblind(actor=world.data_manager, trial=world.trial, password=PASSWORD, reason="final analysis")
    assert AuditEntry.objects.filter(model="endpoints.unblinding", reason="final analysis").exists()
    out = tmp_path / "unblinded.csv"
    call_command("export_endpoints", "--format", "csv", "--out", str(out), "--user", world.statistician.username)
    frame = pd.read_csv(out)
    ai_review, ai_case = next((r, c) for r, c in cases if c.patient.allocation.arm == "ai")
    row = frame.set_index("trial_id").loc[ai_case.patient.trial_number]
    assert row.allocation == "ai" and row.ai_model.startswith("demo-gtv")
    metrics = CorrectionMetrics.objects.get(case=ai_review, comparison="ai_vs_submitted").values
    assert row.as_edited_slices == metrics["edited_slices"] == 2
    assert DataLock.objects.get().rows == len(frame)


def test_statistician_page_downloads_and_the_data_manager_locks(trial_data):
    world, _cases, _ = trial_data
    from django.test import Client

    statistician = Client()
    statistician.force_login(world.statistician)
    page = statistician.get("/endpoints/")
    assert page.status_code == 200 and b"Blinded" in page.content and b"Sign and lock" not in page.content
    for what, fmt in (("endpoints", "dta"), ("events", "csv"), ("codebook", "csv")):
        response = statistician.get(f"/endpoints/download/{what}/{fmt}/")
        assert response.status_code == 200 and len(response.content) > 100, (what, fmt)
    events = pd.read_csv(__import__("io").BytesIO(statistician.get("/endpoints/download/events/csv/").content))
    assert set(events.work) == {"review"} and list(events.kind) == ["open", "edit", "edit"] * 2
    assert list(events.t_ms) == [0, 1500, 4000] * 2 and set(events.session) == {1}
    physician = Client()
    physician.force_login(world.physician)
    assert physician.get("/endpoints/").status_code == 403
    assert physician.get("/endpoints/download/endpoints/csv/").status_code == 403
    manager = Client()
    manager.force_login(world.data_manager)
    manager.post("/endpoints/lock/", {"password": PASSWORD})
    assert DataLock.objects.filter(trial=world.trial).exists()
    assert b"Sign and unblind" in manager.get("/endpoints/").content
