"""Upload limits and unsafe archives, beyond the broken-file corpus of tests/imaging/test_ingest_bad_input.py
(which covers '../' members and an honest high-ratio zip bomb): bodies over UPLOAD_MAX_BYTES refused before they
are read, too many files, absolute / drive / backslash paths, symlinks, a zip whose header lies about the size,
nested zips, a patient id that is not a number. Every refusal is JSON naming the limit or the problem, and
leaves no rows and no files. The limits are read from settings at each request.
"""

import io
import stat
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imaging.models import Instance, Series, Study, UidMapping
from imaging.phantom.writer import write_phantom
from tests.imaging.helpers import phantom_patient
from trial.models import AuditEntry

pytestmark = pytest.mark.django_db
URL = "/api/v1/imaging/uploads/"


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory) -> list[tuple[str, bytes]]:
    """A small CT series (6 slices of 32×32) of phantom 11 (patient id PHANTOM-11)."""
    files = write_phantom(tmp_path_factory.mktemp("limits-phantom"), seed=11, rows=32, slices=6)
    return [(path.name, path.read_bytes()) for path in sorted(files.ct_dir.glob("*.dcm"))]


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def send(world, media):
    """Post files (name, bytes) for the phantom's patient; assert a refusal left nothing behind."""
    patient = phantom_patient(world)
    client = world.client(world.coordinator)

    def post(files, patient_id=None, **extra):
        audit = AuditEntry.objects.count()
        response = client.post(
            URL,
            {"patient": patient.pk if patient_id is None else patient_id,
             "files": [SimpleUploadedFile(name, data) for name, data in files]},
            format="multipart", **extra,
        )  # fmt: skip
        if response.status_code != 201:
            assert not (Study.objects.exists() or Series.objects.exists() or Instance.objects.exists()
                        or UidMapping.objects.exists()), "a refused upload left rows"  # fmt: skip
            assert AuditEntry.objects.count() == audit
            assert not [p for p in media.rglob("*") if p.is_file()], "a refused upload left files"
        return response

    return post


def zip_of(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix, so the mode bits below are read as such
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def test_a_body_over_the_limit_is_refused_with_413_naming_it_even_before_it_is_read(send, ct_files, settings):
    settings.UPLOAD_MAX_BYTES = 16_000  # the six files take ~25 kB
    response = send(ct_files)
    assert response.status_code == 413, response.content[:300]
    assert "more than the limit of 16,000 bytes (UPLOAD_MAX_BYTES)" in response.json()["detail"]
    # A Content-Length over the limit on a small body: the test client raises if the server reads past the body,
    # so a 413 here means the claim alone was refused.
    response = send(ct_files[:1], CONTENT_LENGTH=str(64 << 20))
    assert response.status_code == 413 and "UPLOAD_MAX_BYTES" in response.json()["detail"]


def test_within_the_limits_the_same_files_are_stored(send, ct_files, settings, media):
    """The control for the refusals: 201, and multipart names with '..' cannot steer where files go."""
    settings.UPLOAD_MAX_BYTES = 64_000
    response = send([(f"../../../{name}", data) for name, data in ct_files])
    assert response.status_code == 201, response.content[:300]
    stored = [p for p in media.rglob("*") if p.is_file()]
    assert len(stored) == len(ct_files) and all(p.resolve().is_relative_to(media.resolve()) for p in stored)


def test_more_files_than_the_limits_are_refused(send, ct_files, settings):
    settings.UPLOAD_MAX_FILES = 4
    response = send([("study.zip", zip_of(dict(ct_files)))])
    assert response.status_code == 400 and "more than the limit of 4" in response.json()["detail"]
    response = send(ct_files)  # as separate files: counted after expansion
    assert response.status_code == 400 and "more than 4 files" in response.json()["detail"]
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3  # Django's own count while parsing the request: JSON too, not HTML
    response = send(ct_files)
    assert response.status_code == 413 and "DATA_UPLOAD_MAX_NUMBER_FILES" in response.json()["detail"]


def test_unsafe_member_paths_are_refused(send, ct_files):
    for member in (
        "/etc/cron.d/evil.dcm",
        "C:\\Windows\\evil.dcm",
        "C:evil.dcm",
        "..\\..\\evil.dcm",
        "ct/../../evil.dcm",
    ):
        response = send([("study.zip", zip_of(dict(ct_files) | {member: ct_files[0][1]}))])
        assert response.status_code == 400 and "unsafe path" in response.json()["detail"], (member, response.json())


def test_a_symlink_in_the_zip_is_refused(send, ct_files):
    response = send([("study.zip", zip_of(dict(ct_files), symlinks={"ct/CT_9999.dcm": "/etc/passwd"}))])
    assert response.status_code == 400 and "symbolic link" in response.json()["detail"], response.json()


def test_a_zip_whose_header_understates_the_size_is_not_inflated_beyond_it(send, settings):
    """The local header says 1 kB; the deflate stream holds 64 MB of zeros. Reading stops at the stated size."""
    settings.UPLOAD_MAX_COMPRESSION_RATIO = 10_000_000  # the ratio check would catch an honest header
    honest = zip_of({"bomb.dcm": bytes(64 << 20)})
    archive = zipfile.ZipFile(io.BytesIO(honest))
    info = archive.infolist()[0]
    lying = bytearray(honest)
    for offset in (info.header_offset + 22, honest.rindex(b"PK\x01\x02") + 24):  # local and central uncompressed size
        lying[offset : offset + 4] = (1024).to_bytes(4, "little")
    response = send([("study.zip", bytes(lying))])
    assert response.status_code == 400, response.content[:300]
    assert "bomb.dcm" in response.json()["detail"]


def test_a_zip_inside_a_zip_is_not_expanded(send, ct_files):
    inner = zip_of(dict(ct_files))
    response = send([("outer.zip", zip_of({"inner.zip": inner}))])
    assert response.status_code == 400 and "inner.zip" in response.json()["detail"], response.json()


def test_a_patient_id_that_is_not_a_number_is_a_400(send, ct_files):
    """'abc' once reached a primary-key lookup and answered 500."""
    for patient_id in ("abc", "1.5", "-1", "²", "99999999999999999999999"):
        response = send(ct_files[:1], patient_id=patient_id)
        assert response.status_code in (400, 404), (patient_id, response.content[:300])
        assert response.json()["detail"]
