"""A corpus of broken uploads: each gets a clear error and leaves nothing stored."""

import io
import zipfile

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imaging.models import Instance, Series, Study, UidMapping
from tests.imaging.helpers import phantom_patient, stored_files, zip_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _files(folder):
    return sorted(folder.glob("*.dcm"))


def _edit(path, **changes):
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


def _truncate(ct, pet):
    path = _files(ct)[5]
    path.write_bytes(path.read_bytes()[:-5000])
    return zip_of(ct), "pixel data is truncated"


def _not_dicom(ct, pet):
    (ct / "notes.dcm").write_text("this is not a DICOM file")
    return zip_of(ct), "not a DICOM file"


def _no_pixels(ct, pet):
    _edit(_files(ct)[3], PixelData=None)
    return zip_of(ct), "has no pixel data"


def _wrong_modality(ct, pet):
    _edit(_files(ct)[0], Modality="SR")
    return zip_of(ct), "modality SR is not accepted"


def _gap(ct, pet):
    _files(ct)[20].unlink()
    return zip_of(ct), "missing slice (gap)"


def _duplicate(ct, pet):
    files = _files(ct)
    second = pydicom.dcmread(files[10])
    second.SOPInstanceUID = pydicom.uid.generate_uid()
    second.save_as(ct / "duplicate.dcm", enforce_file_format=True)
    return zip_of(ct), "duplicated slice position"


def _mixed(ct, pet):
    _edit(_files(ct)[7], ImageOrientationPatient=[1, 0, 0, 0, 0.9998477, 0.0174524])
    return zip_of(ct), "ImageOrientationPatient differs"


def _pet_without_dose(ct, pet):
    ds = pydicom.dcmread(_files(pet)[0])
    del ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose
    ds.save_as(_files(pet)[0], enforce_file_format=True)
    return zip_of(ct, pet), "RadionuclideTotalDose"


def _traversal(ct, pet):
    return zip_of(ct, extra={"../../escape.dcm": _files(ct)[0].read_bytes()}), "unsafe path"


def _bomb(ct, pet):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.dcm", b"\0" * (300 * 1024**2))
    return buffer.getvalue(), "zip bomb"


CORPUS = [_truncate, _not_dicom, _no_pixels, _wrong_modality, _gap, _duplicate, _mixed, _pet_without_dose,
          _traversal, _bomb]  # fmt: skip


@pytest.mark.parametrize("breaker", CORPUS, ids=lambda f: f.__name__.strip("_"))
def test_broken_upload_is_refused_with_a_clear_error_and_nothing_stored(world, phantom_copy, breaker):
    ct, pet = phantom_copy
    patient = phantom_patient(world)
    data, message = breaker(ct, pet)
    before = stored_files()
    response = world.client(world.coordinator).post(
        "/api/v1/imaging/uploads/",
        {"patient": patient.pk, "files": [SimpleUploadedFile("x.zip", data)]},
        format="multipart",
    )
    assert response.status_code == 400, response.content[:500]
    assert message in response.json()["detail"], response.json()["detail"]
    assert not (Study.objects.exists() or Series.objects.exists() or Instance.objects.exists()
                or UidMapping.objects.exists())  # fmt: skip
    assert stored_files() == before
