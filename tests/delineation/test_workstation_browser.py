"""Acceptance in Debian Chromium: a physician opens a phantom case, the CT renders, draws (manual arm) or edits
the AI proposal (AI arm) on several slices, autosave stores versions, a reload restores the same voxels, and
submitting with the password locks the case."""

import io

import numpy as np
import pytest
from PIL import Image

from delineation import labelmap_codec
from delineation.models import ContourVersion, SessionEvent, Submission
from tests.browser import chromium_page, login
from tests.conftest import PASSWORD, World
from tests.delineation.helpers import case_in_arm, store_proposal
from tests.inference.conftest import register_demo
from tests.processes import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

READY = '#workstation[data-ready="true"]'


def open_case(page, base_url, patient):
    page.goto(f"{base_url}/delineation/cases/{patient.pk}/")
    page.wait_for_selector(READY, timeout=120_000)


def assert_rendered(page, selector="#viewport-axial"):
    """The viewport shows an image: many grey levels and real contrast, not a blank or flat canvas."""
    pixels = np.asarray(Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("L"))
    assert pixels.std() > 15 and len(np.unique(pixels)) > 30, (pixels.std(), len(np.unique(pixels)))


def stroke(page, row: float, column: float, half_length: float):
    """A horizontal brush stroke through voxel (row, column) of the axial slice shown, by real mouse events."""
    start = page.evaluate("([r, c]) => window.contourTrial.axialPointOnPage(r, c)", [row, column - half_length])
    end = page.evaluate("([r, c]) => window.contourTrial.axialPointOnPage(r, c)", [row, column + half_length])
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(end["x"], end["y"], steps=12)
    page.mouse.up()


def show_slice(page, z: int):
    page.evaluate("z => window.contourTrial.showAxialSlice(z)", z)
    page.wait_for_function("z => window.contourTrial.axialSlice() === z", arg=z)


def scroll(page, slices, selector="#viewport-axial"):
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(abs(slices)):
        page.mouse.wheel(0, 120 if slices > 0 else -120)
        page.wait_for_timeout(50)


def wait_saved(page, at_least: int, timeout=30_000):
    page.wait_for_function(
        """n => { const s = document.querySelector('#save-state');
                  return s.dataset.state === 'saved' && Number(s.dataset.version) >= n; }""",
        arg=at_least,
        timeout=timeout,
    )
    return int(page.get_attribute("#save-state", "data-version"))


def page_digest(page):
    digest = page.evaluate("window.contourTrial.labelmapDigest()")
    return digest["nonzero"], digest["weighted"]


def stored(patient, number=None):
    versions = ContourVersion.objects.filter(patient=patient)
    version = versions.get(number=number) if number else versions.latest("number")
    return labelmap_codec.decode(bytes(version.labelmap), tuple(version.shape), version.segments)


def submit(page):
    page.click("#submit-button")
    page.fill("#submit-password", "wrong password")
    page.click("#submit-confirm")
    page.wait_for_selector("#submit-error:not(:empty)", timeout=15_000)
    assert not Submission.objects.exists()
    page.fill("#submit-password", PASSWORD)
    page.click("#submit-confirm")
    page.wait_for_selector('#workstation[data-locked="true"]', timeout=30_000)
    assert page.is_visible("#locked-banner")


def test_manual_arm_draw_autosave_reload_submit(live_server, tmp_path):
    world = World()
    case = case_in_arm(world, "manual", tmp_path / "phantom", seed=31)
    with chromium_page() as page:
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        login(page, live_server.url, world.physician.username, PASSWORD)
        open_case(page, live_server.url, case.patient)
        dom = page.content().lower()  # the whole document, hidden dialogs included
        assert not any(word in dom for word in ("proposal", "uncertainty", "model", "ai-assisted"))
        assert not any("proposal" in url or "inference" in url for url in requested)
        assert_rendered(page, "#viewport-axial")
        assert_rendered(page, "#viewport-sagittal")
        assert page_digest(page) == (0, 0)  # the manual arm starts from nothing
        page.keyboard.press("b")
        rows, columns = case.truth.shape[1:]
        start = page.evaluate("window.contourTrial.axialSlice()")
        for _ in range(3):  # three slices, 3 apart, scrolled to with the mouse wheel
            stroke(page, rows / 2, columns / 2, columns / 10)
            scroll(page, 3)
        assert page.evaluate("window.contourTrial.axialSlice()") != start
        first = wait_saved(page, 1)  # autosave, without asking for it
        assert first >= 1
        page.evaluate("window.contourTrial.flushSave()")
        number = wait_saved(page, first)
        labels = stored(case.patient, number)
        assert len(np.flatnonzero(labels.any(axis=(1, 2)))) >= 3, "brush strokes on three slices"
        assert page_digest(page) == labelmap_codec.digest(labels)
        page.reload()
        page.wait_for_selector(READY, timeout=120_000)
        assert page_digest(page) == labelmap_codec.digest(labels)  # restored voxel for voxel
        submit(page)
    submission = Submission.objects.get(patient=case.patient)
    assert submission.version.number == number and submission.signature.signer == world.physician
    kinds = set(SessionEvent.objects.filter(session__patient=case.patient).values_list("kind", flat=True))
    assert {"open", "pointer", "edit", "wheel"} <= kinds


def test_ai_arm_starts_from_the_proposal_and_edits_it(live_server, tmp_path):
    world = World()
    model = register_demo(world, active=False)  # no job is queued; the proposal is stored below
    case = case_in_arm(world, "ai", tmp_path / "phantom", seed=32)
    store_proposal(world, case, case.truth, model=model)
    with chromium_page() as page:
        login(page, live_server.url, world.physician.username, PASSWORD)
        open_case(page, live_server.url, case.patient)
        assert_rendered(page)
        assert page_digest(page) == labelmap_codec.digest(case.truth.astype(np.uint8))  # the AI mask
        page.keyboard.press("u")  # uncertainty heat-map on
        page.keyboard.press("a")  # untouched proposal as an outline
        assert_rendered(page)
        page.keyboard.press("e")  # the eraser, across the proposal on two of its middle slices
        gtv_slices = np.flatnonzero(case.truth.any(axis=(1, 2)))
        for z in gtv_slices[len(gtv_slices) // 2 : len(gtv_slices) // 2 + 2]:
            show_slice(page, int(z))
            row, column = np.argwhere(case.truth[z]).mean(axis=0)
            stroke(page, row, column, half_length=8)
        page.evaluate("window.contourTrial.flushSave()")
        number = wait_saved(page, 1)
        labels = stored(case.patient, number)
        assert 0 < labels.sum() < case.truth.sum(), "the eraser removed part of the AI proposal"
        assert not np.any(labels.astype(bool) & ~case.truth), "erasing adds nothing"
        page.reload()
        page.wait_for_selector(READY, timeout=120_000)
        assert page_digest(page) == labelmap_codec.digest(labels)
        submit(page)
    assert Submission.objects.get(patient=case.patient).version.number == number


def test_leaving_the_page_right_after_an_edit_keeps_it_and_the_events(live_server, tmp_path):
    """pagehide: the pending labelmap goes out with fetch keepalive and the last events by sendBeacon."""
    world = World()
    case = case_in_arm(world, "manual", tmp_path / "phantom", seed=33)
    with chromium_page() as page:
        login(page, live_server.url, world.physician.username, PASSWORD)
        open_case(page, live_server.url, case.patient)
        page.keyboard.press("b")
        rows, columns = case.truth.shape[1:]
        stroke(page, rows / 2, columns / 2, columns / 10)
        expected = page_digest(page)
        assert expected[0] > 0 and page.get_attribute("#save-state", "data-state") == "dirty"
        page.goto(f"{live_server.url}/delineation/")  # before the autosave's debounce has run
        wait_for(lambda: ContourVersion.objects.filter(patient=case.patient).exists(), timeout=15,
                 what="the keepalive save")  # fmt: skip
    assert labelmap_codec.digest(stored(case.patient)) == expected
    wait_for(lambda: SessionEvent.objects.filter(session__patient=case.patient, kind="close").exists(), timeout=15,
             what="the beacon's close event")  # fmt: skip
