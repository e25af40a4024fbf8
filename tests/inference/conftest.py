"""AI-arm fixtures: models registered into a temporary MODEL_ROOT, patients randomised to a chosen arm,
phantom images stored through the real pipeline."""

import itertools

import pydicom
import pytest

from imaging.ingest.pipeline import store_images
from imaging.phantom.writer import write_phantom
from inference.predict import DEMO_MODEL_DIR
from inference.registry import activate, register
from tests.conftest import PASSWORD, enrol
from trial.services.randomisation import randomise

_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ROOT = tmp_path / "models"


def register_demo(world, version="1.0", active=True):
    model = register(folder=DEMO_MODEL_DIR, backend="torchscript", name="demo-gtv", version=version,
                     actor=world.data_manager)  # fmt: skip
    if active:
        activate(trial=world.trial, model=model, actor=world.data_manager, reason="tests use the demo model")
    return model


def patient_in_arm(world, arm: str, site: str = "AAR"):
    """Enrol and randomise patients at `site` until one lands in `arm` (blocks guarantee it soon)."""
    coordinator = world.coordinator if site == "AAR" else world.coordinator_ode
    physician = world.physician if site == "AAR" else world.physician_ode
    for _ in range(12):
        patient = enrol(world.trial, coordinator, physician, f"AI-TEST-{next(_numbers):04d}", site=site)
        if randomise(actor=coordinator, patient=patient, password=PASSWORD).arm == arm:
            patient.refresh_from_db()
            return patient
    raise AssertionError(f"no {arm} allocation in 12 randomisations")


def phantom_datasets(folder, seed: int, rows: int = 256, slices: int | None = None):
    files = write_phantom(folder, seed=seed, rows=rows, slices=slices)
    paths = sorted(files.ct_dir.glob("*.dcm")) + sorted(files.pet_dir.glob("*.dcm"))
    return files, [pydicom.dcmread(p) for p in paths]


def store_phantom(patient, folder, seed: int, rows: int = 256, slices: int | None = None):
    files, datasets = phantom_datasets(folder, seed, rows, slices)
    store_images(patient=patient, datasets=datasets, source="upload")
    return files
