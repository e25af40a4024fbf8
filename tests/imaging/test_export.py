"""Contours out: a re-identified RTSTRUCT for the planning system, written and sent by C-STORE."""

import socket
import subprocess

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from imaging.contours.maskio import read_mask
from imaging.contours.rtstruct import rtstruct_to_mask
from imaging.export import planning_rtstruct, send_to_planning_system
from imaging.geometry import grid_from_datasets
from tests.imaging.helpers import phantom_patient, zip_of
from tests.processes import wait_for
from trial.models import AuditEntry
from trial.services.errors import NotAllowed

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def imported(world, small_phantom):
    patient = phantom_patient(world)
    response = world.client(world.coordinator).post(
        "/api/v1/imaging/uploads/",
        {"patient": patient.pk, "files": [SimpleUploadedFile("s.zip", zip_of(small_phantom.ct_dir))]},
        format="multipart",
    )
    assert response.status_code == 201
    original_ct = [pydicom.dcmread(p) for p in sorted(small_phantom.ct_dir.glob("*.dcm"))]
    grid, ordered = grid_from_datasets(original_ct)
    return patient, ordered, read_mask(small_phantom.gtv_nifti, grid)


def test_export_restores_the_original_patient_and_uids(world, imported):
    patient, original_ct, gtv = imported
    rtstruct = planning_rtstruct(actor=world.data_manager, patient=patient, mask=gtv, roi_name="GTV")
    first = original_ct[0]
    assert rtstruct.PatientID == first.PatientID and str(rtstruct.PatientName) == str(first.PatientName)
    assert rtstruct.StudyInstanceUID == first.StudyInstanceUID
    referenced = rtstruct.ReferencedFrameOfReferenceSequence[0]
    assert referenced.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert "PatientIdentityRemoved" not in rtstruct
    # The planning system reads it against the ORIGINAL CT and gets the same GTV.
    assert (rtstruct_to_mask(rtstruct, original_ct, "GTV") == gtv).all()
    assert AuditEntry.objects.filter(action="export_reidentified", actor_username="dm").exists()


def test_only_data_managers_export(world, imported):
    patient, _ct, gtv = imported
    for user in (world.coordinator, world.physician, world.statistician, world.panel):
        with pytest.raises(NotAllowed):
            planning_rtstruct(actor=user, patient=patient, mask=gtv)


def test_export_command_writes_the_file_and_refuses_bad_input(world, imported, small_phantom, tmp_path):
    patient, _ct, _gtv = imported
    out = tmp_path / "rs.dcm"
    call_command("export_rtstruct", patient.trial_number, str(small_phantom.gtv_nifti), str(out), "--user", "dm")
    assert pydicom.dcmread(out).Modality == "RTSTRUCT"
    with pytest.raises(CommandError, match="Unknown patient"):
        call_command("export_rtstruct", "HN-9999", str(small_phantom.gtv_nifti), str(out), "--user", "dm")
    with pytest.raises(CommandError, match="data manager"):
        call_command("export_rtstruct", patient.trial_number, str(small_phantom.gtv_nifti), str(out),
                     "--user", "coord_aar")  # fmt: skip


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.dicom_tools
def test_send_to_a_planning_system_over_c_store(world, imported, tmp_path):
    patient, original_ct, gtv = imported
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    received = tmp_path / "tps"
    received.mkdir()
    tps = subprocess.Popen(["storescp", "-od", str(received), "-aet", "TPS", str(port)])
    try:
        wait_for(lambda: _listening(port), timeout=30, what="storescp to listen")
        rtstruct = planning_rtstruct(actor=world.data_manager, patient=patient, mask=gtv)
        send_to_planning_system(rtstruct, ae_title="TPS", host="127.0.0.1", port=port)
    finally:
        tps.terminate()
        tps.wait()
    (stored,) = list(received.iterdir())
    ds = pydicom.dcmread(stored)
    assert ds.Modality == "RTSTRUCT" and ds.PatientID == original_ct[0].PatientID
