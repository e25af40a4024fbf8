"""End to end in Chromium with a real Celery worker: a panel member opens a case by its code, edits the
submitted GTV, approves it with the password and answers the blinding question; the correction metrics are in
the endpoint data within a minute."""

import uuid

import numpy as np
import pytest
from django.db import connection

from delineation import services as delineation
from delineation.labelmap_codec import encode
from panel_review.models import CorrectionMetrics, ReviewCase
from tests.browser import chromium_page, login
from tests.conftest import PASSWORD, World
from tests.delineation.helpers import case_in_arm
from tests.delineation.test_workstation_browser import READY, page_digest, show_slice, stroke
from tests.processes import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.celery]


def test_panel_member_reviews_approves_and_guesses(live_server, tmp_path):
    world = World()
    case = case_in_arm(world, "manual", tmp_path / "phantom", seed=61)
    submitted = case.truth.astype(np.uint8)
    delineation.save_version(actor=world.physician, patient=case.patient, blob=encode(submitted), base_version=0,
                             save_id=str(uuid.uuid4()))  # fmt: skip
    delineation.submit(actor=world.physician, patient=case.patient, password=PASSWORD, version_number=1)
    review = wait_for(lambda: ReviewCase.objects.filter(patient=case.patient).first(), 10, what="the review case")
    with celery_worker(connection.settings_dict, queues=("default",)), chromium_page() as page:
        login(page, live_server.url, world.panel.username, PASSWORD)
        page.goto(f"{live_server.url}/review/")
        page.click(f"tr[data-code='{review.code}'] a")
        page.wait_for_selector(READY, timeout=120_000)
        text = page.inner_text("body")
        assert review.code in text and case.patient.trial_number not in text
        assert world.physician.get_full_name() not in page.content()
        assert page_digest(page)[0] == int(submitted.astype(bool).sum())  # starts from the submitted GTV
        z = int(np.flatnonzero(case.truth.any(axis=(1, 2))).mean())
        show_slice(page, z)
        row, column = np.argwhere(case.truth[z]).mean(axis=0)
        page.keyboard.press("b")
        stroke(page, row + 6, column, half_length=6)  # the panel extends the GTV a little
        page.evaluate("window.contourTrial.flushSave()")
        page.click("#submit-button")
        page.fill("#submit-password", PASSWORD)
        page.click("#submit-confirm")
        page.wait_for_selector('#workstation[data-locked="true"]', timeout=30_000)
        page.wait_for_selector("#guess-dialog[open]", timeout=10_000)
        page.click("#guess-dialog button[data-guess='manual']")
        page.wait_for_selector('#workstation[data-guess="manual"]', timeout=10_000)
        metrics = wait_for(lambda: CorrectionMetrics.objects.filter(case=review).first(), 60,
                           what="the correction metrics from the worker")  # fmt: skip
    review.refresh_from_db()
    assignment = review.assignments.get()
    assert assignment.guess == "manual" and assignment.signature.signer == world.panel
    values = metrics.values
    assert values["edited_slices"] >= 1 and values["volume_after_cc"] > values["volume_before_cc"]
    assert values["apl_mm"]["0"] > 0 and 0.5 < values["dice"] < 1
