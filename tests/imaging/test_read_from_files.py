"""Images read from files on disk (listener spool, quarantine, demo): the ingest reader's `read_file` gives
dcmread's dataset, the pixel data stays in the file until it is stored (FileRange), and a file changed
between reading and storing is refused without storing anything."""

import copy
import hashlib
import io
import os
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import FileSystemStorage
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from imaging.dicom.elements import DeferredValueChanged, FileRange, deferred_value
from imaging.dicom.rewrite import encode_file, encode_file_chunks, encode_with_pydicom
from imaging.ingest import parse, pipeline
from imaging.ingest.files import StoredFiles
from imaging.ingest.parse import InputError, parse_file, parse_payload
from imaging.ingest.payloads import Payload
from imaging.ingest.reader import HEAD, read_file
from imaging.models import Instance, Series, UidMapping
from tests.imaging.helpers import (
    assert_same_as_dcmread,
    deidentified,
    forget_import,
    phantom_paths,
    phantom_patient,
    stored_files,
    stored_instances,
)
from tests.imaging.synthetic_pet import ct_series, pet_series, rt_structure_set

PIXEL_DATA = 0x7FE00010


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _file(tmp_path: Path, ds: Dataset, syntax=ExplicitVRLittleEndian, name: str = "image.dcm") -> Path:
    ds = copy.deepcopy(ds)
    ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True, implicit_vr=syntax.is_implicit_VR, little_endian=True)
    return path


def _large_ct() -> Dataset:
    ds = ct_series()[0]
    ds.Rows = ds.Columns = 256
    ds.PixelData = bytes(range(256)) * 512  # 128 KiB: deferred at the ingest's defer size
    return ds


def _sources():
    ct = ct_series()
    for name, ds in (("ct", _large_ct()), ("pet", pet_series()[0]), ("rtstruct", rt_structure_set(ct))):
        for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            yield pytest.param(ds, syntax, id=f"{name}-{'implicit' if syntax.is_implicit_VR else 'explicit'}")


@pytest.mark.parametrize(("source", "syntax"), list(_sources()))
@pytest.mark.parametrize("defer_size", [None, 16, 1024, parse.DEFER_SIZE])
def test_read_file_gives_the_dataset_dcmread_reads_from_the_file(tmp_path, source, syntax, defer_size):
    path = _file(tmp_path, source, syntax)
    ours, theirs = read_file(path, defer_size=defer_size), pydicom.dcmread(path, defer_size=defer_size)
    assert_same_as_dcmread(ours, theirs)
    assert ours.filename == str(path) and ours.buffer is theirs.buffer is None, "deferred values are read by name"
    assert ours == pydicom.dcmread(path), "and it reads as the whole file when used"


def test_a_value_kept_in_the_dataset_beyond_the_head_of_the_file_is_read_too(tmp_path):
    ds = _large_ct()
    ds.add_new(0x00091010, "OB", bytes(range(256)) * 160)  # 40 KiB: beyond the head, not deferred
    path = _file(tmp_path, ds)
    ours = read_file(path, defer_size=parse.DEFER_SIZE)
    assert HEAD < 40 * 1024 < parse.DEFER_SIZE
    assert ours._dict[0x00091010].value == bytes(range(256)) * 160 and ours._dict[PIXEL_DATA].value is None
    assert_same_as_dcmread(ours, pydicom.dcmread(path, defer_size=parse.DEFER_SIZE))


@pytest.mark.parametrize("cut", [7, 5000, 100_000])
def test_a_truncated_file_reads_as_dcmread_reads_it(tmp_path, cut):
    path = _file(tmp_path, _large_ct())
    path.write_bytes(path.read_bytes()[:-cut])
    assert_same_as_dcmread(read_file(path, defer_size=1024), pydicom.dcmread(path, defer_size=1024))
    with pytest.raises(InputError, match="pixel data is truncated"):
        parse_file(path)


def test_not_dicom_and_missing_files_are_named():
    with pytest.raises(InputError, match=r"missing\.dcm: cannot be read"):
        parse_file(Path("/nonexistent/missing.dcm"))


def test_not_a_dicom_file_is_refused_as_an_upload_is(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("this is not a DICOM file")
    with pytest.raises(InputError, match=r"notes\.dcm: not a DICOM file"):
        parse_file(path)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_pixel_data_is_copied_from_the_file_into_the_stored_file(tmp_path, syntax):
    path = _file(tmp_path, _large_ct(), syntax)
    ds = deidentified(parse_file(path))
    assert ds._dict[PIXEL_DATA].value is None and ds.buffer is None, "the dataset holds no pixel data"
    chunks = encode_file_chunks(ds)
    ranges = [chunk for chunk in chunks if isinstance(chunk, FileRange)]
    assert len(ranges) == 1 and ranges[0].path == str(path) and len(ranges[0]) == 128 * 1024
    expected = encode_with_pydicom(deidentified(pydicom.dcmread(io.BytesIO(path.read_bytes()))))
    assert encode_file(ds) == expected
    files = StoredFiles(FileSystemStorage(location=tmp_path / "store"))
    name, digest = files.write("dicom/a.dcm", chunks)
    assert (tmp_path / "store" / name).read_bytes() == expected and digest == hashlib.sha256(expected).hexdigest()


def test_a_file_modified_after_it_was_read_is_refused_before_and_while_it_is_copied(tmp_path):
    path = _file(tmp_path, _large_ct())
    ds = parse_file(path)
    element = ds._dict[PIXEL_DATA]
    chunk = deferred_value(ds, element)
    assert isinstance(chunk, FileRange)
    stamp = os.stat(path).st_mtime_ns
    os.utime(path, ns=(stamp, stamp + 1_000_000_000))  # touched: its contents may differ from what was checked
    with pytest.raises(DeferredValueChanged, match=r"image\.dcm: the file changed while it was being imported"):
        deferred_value(ds, element)
    with pytest.raises(DeferredValueChanged):
        chunk.read()
    with pytest.raises(DeferredValueChanged):
        encode_file_chunks(ds)  # not handed to pydicom's writer, which would read the file as it is now


def test_an_element_header_no_longer_where_it_was_is_refused_when_copied(tmp_path):
    path = _file(tmp_path, _large_ct())
    chunk = deferred_value(parse_file(path), parse_file(path)._dict[PIXEL_DATA])
    data = bytearray(path.read_bytes())
    data[chunk.header_start : chunk.header_start + 4] = b"\x00\x00\x00\x00"
    stamp = os.stat(path).st_mtime_ns
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stamp, stamp))  # same modification time: the header check still sees it
    with pytest.raises(DeferredValueChanged):
        chunk.read()


# The pipeline


@pytest.mark.django_db
def test_files_read_from_disk_are_stored_exactly_as_the_same_bytes_uploaded(world, small_phantom, monkeypatch):
    monkeypatch.setattr(parse, "DEFER_SIZE", 1024)  # the small phantom's images, deferred as full-size ones are
    patient = phantom_patient(world)
    uploaded = [parse_payload(Payload(path.name, path.read_bytes())) for path in phantom_paths(small_phantom)]
    pipeline.store_images(patient=patient, datasets=uploaded, source="upload")
    expected, mappings = stored_instances(), set(UidMapping.objects.values_list("original_uid", "pseudonymous_uid"))
    forget_import()

    datasets = [parse_file(path) for path in phantom_paths(small_phantom)]
    assert all(ds._dict[PIXEL_DATA].value is None and ds.buffer is None for ds in datasets)
    pipeline.store_images(patient=patient, datasets=datasets, source="dicom")
    assert stored_instances() == expected and len(expected) == len(datasets)
    assert set(UidMapping.objects.values_list("original_uid", "pseudonymous_uid")) == mappings


@pytest.mark.django_db
def test_a_file_changed_before_it_is_stored_is_refused_and_nothing_is_stored(world, phantom_copy, monkeypatch):
    monkeypatch.setattr(parse, "DEFER_SIZE", 1024)
    ct, _pet = phantom_copy
    patient = phantom_patient(world)
    paths = sorted(ct.glob("*.dcm"))
    datasets = [parse_file(path) for path in paths]
    changed = paths[len(paths) // 2]
    changed.write_bytes(changed.read_bytes()[:-100])  # rewritten meanwhile (here: cut short)
    before = stored_files()
    with pytest.raises(InputError, match=rf"{changed.name}: the file changed while it was being imported"):
        pipeline.store_images(patient=patient, datasets=datasets, source="dicom")
    assert stored_files() == before and not Series.objects.exists() and not Instance.objects.exists()
