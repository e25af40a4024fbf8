"""The fast reader (imaging/ingest/reader.py): the very dataset pydicom.dcmread reads, or dcmread itself."""

import copy
import io

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from imaging.ingest.reader import _Fallback, _read, read
from tests.imaging.helpers import assert_same_as_dcmread
from tests.imaging.synthetic_pet import ct_series, pet_series, rt_structure_set


def _bytes(ds, syntax) -> bytes:
    ds = copy.deepcopy(ds)
    ds.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=syntax.is_implicit_VR,
               little_endian=syntax.is_little_endian)  # fmt: skip
    return buffer.getvalue()


def _sources():
    ct = ct_series()
    for name, ds in (("ct", ct[0]), ("pet", pet_series()[0]), ("rtstruct", rt_structure_set(ct))):
        for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            yield pytest.param(ds, syntax, id=f"{name}-{'implicit' if syntax.is_implicit_VR else 'explicit'}")


@pytest.mark.parametrize(("source", "syntax"), list(_sources()))
def test_the_fast_reader_gives_dcmreads_dataset(source, syntax):
    data = _bytes(source, syntax)
    assert_same_as_dcmread(_read(data), pydicom.dcmread(io.BytesIO(data)))  # nested sequences stay raw, as in dcmread
    assert_same_as_dcmread(read(data), pydicom.dcmread(io.BytesIO(data)))


@pytest.mark.parametrize(("source", "syntax"), list(_sources()))
@pytest.mark.parametrize("defer_size", [16, 1024])
def test_deferred_values_are_left_as_dcmread_leaves_them(source, syntax, defer_size):
    data = _bytes(source, syntax)
    ours, theirs = read(data, defer_size=defer_size), pydicom.dcmread(io.BytesIO(data), defer_size=defer_size)
    assert_same_as_dcmread(ours, theirs)
    assert defer_size > 16 or any(element.value is None for element in ours._dict.values()), "some were deferred"
    assert ours == pydicom.dcmread(io.BytesIO(data)), "and reads as the whole file when used"


@pytest.mark.parametrize("cut", [5000, 100_000, 7])
def test_a_truncated_file_read_deferred_reads_as_dcmread_reads_it(cut):
    data = _bytes(ct_series()[0], ExplicitVRLittleEndian)
    data = data[: len(data) - cut] if cut < len(data) else data
    assert_same_as_dcmread(read(data, defer_size=1024), pydicom.dcmread(io.BytesIO(data), defer_size=1024))


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_sequence_of_undefined_length_goes_to_dcmread(syntax):
    ds = ct_series()[0]
    ds.ReferencedStudySequence = [Dataset()]
    ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID = "1.2.3"
    ds["ReferencedStudySequence"].is_undefined_length = True
    data = _bytes(ds, syntax)
    with pytest.raises(_Fallback):
        _read(data)
    assert_same_as_dcmread(read(data), pydicom.dcmread(io.BytesIO(data)))


def test_phantom_files_read_as_dcmread_reads_them(small_phantom):
    for path in [*sorted(small_phantom.ct_dir.glob("*.dcm"))[:3], *sorted(small_phantom.pet_dir.glob("*.dcm"))[:3]]:
        data = path.read_bytes()
        assert_same_as_dcmread(_read(data), pydicom.dcmread(io.BytesIO(data)))
    data = small_phantom.rtstruct.read_bytes()
    assert_same_as_dcmread(read(data), pydicom.dcmread(io.BytesIO(data)))


@pytest.mark.parametrize("cut", [5000, 100_000, 7])
def test_a_truncated_file_reads_as_dcmread_reads_it(cut):
    data = _bytes(ct_series()[0], ExplicitVRLittleEndian)
    data = data[: len(data) - cut] if cut < len(data) else data
    assert_same_as_dcmread(read(data), pydicom.dcmread(io.BytesIO(data)))


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_other_transfer_syntaxes_go_to_dcmread(syntax):
    data = _bytes(ct_series()[0], syntax)
    with pytest.raises(_Fallback):
        _read(data)
    assert_same_as_dcmread(read(data), pydicom.dcmread(io.BytesIO(data)))


def test_an_unknown_vr_goes_to_dcmread():
    data = bytearray(_bytes(ct_series()[0], ExplicitVRLittleEndian))
    position = data.index(b"\x08\x00\x60\x00CS")  # Modality
    data[position + 4 : position + 6] = b"QQ"
    with pytest.raises(_Fallback):
        _read(bytes(data))
    assert_same_as_dcmread(read(bytes(data)), pydicom.dcmread(io.BytesIO(bytes(data))))


def test_what_dcmread_refuses_is_refused_the_same_way():
    with pytest.raises(InvalidDicomError):
        read(b"this is not a DICOM file")
    with pytest.raises(InvalidDicomError):
        pydicom.dcmread(io.BytesIO(b"this is not a DICOM file"))
