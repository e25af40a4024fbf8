"""A coordinator uploads a zip on the patient's imaging page in Chromium and watches the progress bar."""

import pytest

from imaging.models import Series
from tests.browser import chromium_page, login
from tests.conftest import PASSWORD, World
from tests.imaging.helpers import phantom_patient, zip_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def test_upload_with_progress_then_series_listed(live_server, small_phantom, tmp_path):
    world = World()
    patient = phantom_patient(world)
    archive = tmp_path / "planning-ct-pet.zip"
    archive.write_bytes(zip_of(small_phantom.ct_dir, small_phantom.pet_dir))
    with chromium_page() as page:
        login(page, live_server.url, world.coordinator.username, PASSWORD)
        page.goto(f"{live_server.url}/imaging/patients/{patient.pk}/")
        page.evaluate("""() => {
            window.__progress = [];
            new MutationObserver(() => window.__progress.push(document.getElementById('upload-progress').value))
              .observe(document.getElementById('upload-progress'), {attributes: true});
        }""")
        page.set_input_files("input[name=files]", str(archive))
        with page.expect_navigation(timeout=60_000):
            page.click("#upload-form button[type=submit]")
        page.wait_for_selector("text=complete since")
        text = page.inner_text("main")
    assert "CT" in text and "PET" in text and "40" in text
    assert sorted(Series.objects.values_list("modality", flat=True)) == ["CT", "PT"]


def test_refusal_is_shown_on_the_page(live_server, small_phantom, tmp_path):
    world = World()
    patient = phantom_patient(world, seed=42)  # the phantom's images carry another hospital id
    archive = tmp_path / "wrong.zip"
    archive.write_bytes(zip_of(small_phantom.ct_dir))
    with chromium_page() as page:
        login(page, live_server.url, world.coordinator.username, PASSWORD)
        page.goto(f"{live_server.url}/imaging/patients/{patient.pk}/")
        page.set_input_files("input[name=files]", str(archive))
        page.click("#upload-form button[type=submit]")
        page.wait_for_selector("text=Refused:", timeout=60_000)
        assert "different hospital patient id" in page.inner_text("#upload-status")
    assert not Series.objects.exists()
