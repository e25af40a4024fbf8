"""Upload through the API: pseudonymised, stored as Study/Series/Instance, served to those entitled."""

import subprocess
from pathlib import Path

import pydicom
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from imaging.models import ImagingCompletion, Instance, Series, Study, UidMapping
from imaging.signals import imaging_complete
from tests.imaging.helpers import phantom_patient, zip_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _upload(api, patient, data: bytes, name="study.zip"):
    return api.post("/api/v1/imaging/uploads/", {"patient": patient.pk, "files": [SimpleUploadedFile(name, data)]},
                    format="multipart")  # fmt: skip


def test_upload_stores_pseudonymised_series_and_announces_complete_imaging(
    world, small_phantom, django_capture_on_commit_callbacks
):
    patient = phantom_patient(world)
    events = []

    def receiver(sender, patient, **kwargs):
        events.append(patient.trial_number)

    imaging_complete.connect(receiver, dispatch_uid="test-imaging-complete")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = _upload(world.client(world.coordinator), patient,
                               zip_of(small_phantom.ct_dir, small_phantom.pet_dir))  # fmt: skip
    finally:
        imaging_complete.disconnect(dispatch_uid="test-imaging-complete")
    assert response.status_code == 201, response.json()
    assert sorted(s["modality"] for s in response.json()) == ["CT", "PT"]
    ct = Series.objects.get(modality="CT")
    assert ct.slices == 40 and ct.rows == 128 and Instance.objects.filter(series=ct).count() == 40
    assert events == [patient.trial_number] and ImagingCompletion.objects.filter(patient=patient).exists()

    original = pydicom.dcmread(sorted(small_phantom.ct_dir.glob("*.dcm"))[0])
    stored = pydicom.dcmread(Instance.objects.filter(series=ct).first().file.path)
    assert stored.PatientID == patient.trial_number and stored.PatientName == patient.trial_number
    assert stored.StudyInstanceUID.startswith("2.25.") and stored.StudyInstanceUID != original.StudyInstanceUID
    assert stored.PatientIdentityRemoved == "YES"
    assert UidMapping.objects.filter(pseudonymous_uid=stored.StudyInstanceUID,
                                     original_uid=original.StudyInstanceUID).exists()  # fmt: skip
    study = Study.objects.get()
    assert bytes(study.identity_token) and original.PatientID.encode() not in bytes(study.identity_token)


@pytest.mark.dicom_tools
def test_dcmdump_of_every_stored_file_shows_no_original_identifier(world, small_phantom):
    patient = phantom_patient(world)
    _upload(world.client(world.coordinator), patient, zip_of(small_phantom.ct_dir, small_phantom.pet_dir))
    original = pydicom.dcmread(sorted(small_phantom.ct_dir.glob("*.dcm"))[0])
    keywords = ("PatientID", "PatientName", "StudyInstanceUID", "InstitutionName", "AccessionNumber",
                "ReferringPhysicianName", "StationName")  # fmt: skip
    keywords = ("PatientID", "PatientName", "StudyInstanceUID", "InstitutionName", "AccessionNumber",
                "ReferringPhysicianName", "StationName")  # fmt: skip
    identifiers = {str(original.get(keyword, "")) for keyword in keywords} - {""}
    paths = [instance.file.path for instance in Instance.objects.all()]
    dump = subprocess.run(["dcmdump", "-q", *paths], capture_output=True, text=True, check=True).stdout
    for identifier in identifiers:
        assert identifier not in dump, f"dcmdump shows {identifier!r}"


def test_images_of_another_hospital_patient_are_refused(world, small_phantom):
    patient = phantom_patient(world, seed=99)  # hospital id PHANTOM-99, images carry PHANTOM-11
    response = _upload(world.client(world.coordinator), patient, zip_of(small_phantom.ct_dir))
    assert response.status_code == 400 and "different hospital patient id" in response.json()["detail"]
    assert not Series.objects.exists()


def test_only_senders_of_the_site_may_upload(world, small_phantom):
    patient = phantom_patient(world)
    data = zip_of(small_phantom.ct_dir)
    for user in (world.physician, world.panel, world.statistician):
        assert _upload(world.client(user), patient, data).status_code == 403
    response = _upload(world.client(world.coordinator_ode), patient, data)
    assert response.status_code == 403 and "not AAR" in response.json()["detail"]
    assert not Series.objects.exists()


def test_series_and_instances_are_served_in_slice_order_to_entitled_users_only(world, small_phantom):
    patient = phantom_patient(world)
    _upload(world.client(world.coordinator), patient, zip_of(small_phantom.ct_dir, small_phantom.pet_dir))
    pet = Series.objects.get(modality="PT")
    physician = world.client(world.physician)
    detail = physician.get(f"/api/v1/imaging/series/{pet.pk}/").json()
    assert [i["slice_index"] for i in detail["instances"]] == list(range(pet.slices))
    assert all(i["suv_factor"] > 0 for i in detail["instances"])
    response = physician.get(detail["instances"][0]["url"])
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    data = b"".join(response.streaming_content)
    assert data[128:132] == b"DICM"
    positions = [pydicom.dcmread(Instance.objects.get(pk=i["id"]).file.path).ImagePositionPatient[2]
                 for i in detail["instances"]]  # fmt: skip
    assert positions == sorted(positions)
    for user in (world.panel, world.statistician, world.coordinator_ode, world.physician_ode):
        api = world.client(user)
        assert api.get(f"/api/v1/imaging/series/{pet.pk}/").status_code in (403, 404)
        assert api.get(detail["instances"][0]["url"]).status_code in (403, 404)
        listing = api.get("/api/v1/imaging/series/")
        assert listing.status_code in (403, 404) or listing.json()["count"] == 0


def test_sending_the_same_series_twice_is_refused(world, small_phantom):
    patient = phantom_patient(world)
    api = world.client(world.coordinator)
    assert _upload(api, patient, zip_of(small_phantom.ct_dir)).status_code == 201
    again = _upload(api, patient, zip_of(small_phantom.ct_dir))
    assert again.status_code == 400 and "Already stored" in again.json()["detail"]
    assert Series.objects.count() == 1


def test_images_already_stored_in_another_series_are_refused_and_nothing_is_kept(world, small_phantom, phantom_copy):
    """Found by fuzzing's reviewer: the same SOP instances under a new series UID hit the unique instance UID."""
    patient = phantom_patient(world)
    api = world.client(world.coordinator)
    assert _upload(api, patient, zip_of(small_phantom.ct_dir)).status_code == 201
    ct, _pet = phantom_copy
    for path in ct.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"
        ds.save_as(path)
    media = Path(settings.MEDIA_ROOT)
    files = sorted(p.name for p in media.rglob("*.dcm"))
    again = _upload(api, patient, zip_of(ct))
    assert again.status_code == 400 and "already stored" in again.json()["detail"]
    assert Series.objects.count() == 1 and Instance.objects.count() == 40
    assert sorted(p.name for p in media.rglob("*.dcm")) == files, "the refused import's files are removed"


def test_uid_map_is_readable_by_data_managers_only_and_each_read_is_audited(world, small_phantom):
    from trial.models import AuditEntry

    patient = phantom_patient(world)
    _upload(world.client(world.coordinator), patient, zip_of(small_phantom.ct_dir))
    for user in (world.coordinator, world.physician, world.statistician, world.panel):
        assert world.client(user).get(f"/api/v1/imaging/uid-map/?patient={patient.pk}").status_code == 403
    response = world.client(world.data_manager).get(f"/api/v1/imaging/uid-map/?patient={patient.pk}")
    assert response.status_code == 200 and response.json()["count"] >= 42  # 40 SOP + study + series + frame
    original = pydicom.dcmread(sorted(small_phantom.ct_dir.glob("*.dcm"))[0])
    assert original.SOPInstanceUID in {row["original_uid"] for row in response.json()["results"]}
    assert AuditEntry.objects.filter(action="uid_map_read", actor_username="dm").count() == 1
