"""dcmtk's storescu and echoscu against our C-STORE receiver, on the real PostgreSQL."""

import socket
import subprocess

import pydicom
import pytest
from rest_framework.test import APIClient

from imaging.listener import Listener
from imaging.models import Instance, QuarantinedStudy, Series
from tests.conftest import World
from tests.imaging.helpers import phantom_patient
from tests.processes import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dicom_tools]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def listener(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    receiver = Listener(tmp_path / "spool", "CONTOURTRIAL")
    server = receiver.serve("127.0.0.1", port, block=False)
    yield receiver, port
    server.shutdown()


def _storescu(port, *folders):
    files = [str(p) for folder in folders for p in sorted(folder.glob("*.dcm"))]
    return subprocess.run(["storescu", "-aet", "PACS", "-aec", "CONTOURTRIAL", "127.0.0.1", str(port), *files],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_echoscu_is_answered(listener):
    _, port = listener
    result = subprocess.run(["echoscu", "-aec", "CONTOURTRIAL", "127.0.0.1", str(port)], capture_output=True,
                            text=True, timeout=30)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_storescu_study_lands_under_the_enrolled_patient_pseudonymised(listener, small_phantom):
    receiver, port = listener
    world = World()
    patient = phantom_patient(world)
    result = _storescu(port, small_phantom.ct_dir, small_phantom.pet_dir)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: receiver.outcomes, timeout=60, what="the listener to file the study")
    assert [o.patient for o in receiver.outcomes] == [patient.trial_number]
    assert sorted(Series.objects.filter(study__patient=patient).values_list("modality", flat=True)) == ["CT", "PT"]
    original = pydicom.dcmread(sorted(small_phantom.ct_dir.glob("*.dcm"))[0])
    dump = subprocess.run(["dcmdump", "-q", *[i.file.path for i in Instance.objects.all()]], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    for identifier in (str(original.PatientID), str(original.PatientName), str(original.SeriesInstanceUID)):
        assert identifier not in dump
    assert not QuarantinedStudy.objects.exists()


def test_unknown_patient_is_quarantined_then_assigned_by_the_coordinator(listener, small_phantom):
    receiver, port = listener
    world = World()
    assert _storescu(port, small_phantom.ct_dir).returncode == 0
    wait_for(lambda: receiver.outcomes, timeout=60, what="the listener to quarantine the study")
    held = QuarantinedStudy.objects.get()
    assert held.status == "held" and "No patient enrolled" in held.reason and held.file_count == 40
    assert not Series.objects.exists()

    patient = phantom_patient(world)  # enrolled afterwards; the coordinator files the held study
    api = APIClient()
    api.force_authenticate(world.coordinator)
    listing = api.get("/api/v1/imaging/quarantine/").json()
    assert listing["results"][0]["reason"] == held.reason
    response = api.post(f"/api/v1/imaging/quarantine/{held.pk}/assign/", {"patient": patient.pk}, format="json")
    assert response.status_code == 201, response.json()
    held.refresh_from_db()
    assert held.status == "assigned" and Series.objects.filter(study__patient=patient, modality="CT").exists()
    again = api.post(f"/api/v1/imaging/quarantine/{held.pk}/assign/", {"patient": patient.pk}, format="json")
    assert again.status_code == 409
