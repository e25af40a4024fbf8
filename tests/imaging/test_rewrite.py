"""The fast DICOM writer (imaging/dicom/rewrite.py): byte for byte pydicom's save_as, or pydicom itself."""

import copy
import io
import shutil
import subprocess

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from imaging.dicom.elements import deferred_value
from imaging.dicom.rewrite import Unsupported, encode_file, encode_file_fast, encode_with_pydicom
from tests.imaging.helpers import deidentified as _deid
from tests.imaging.synthetic_pet import ct_series, pet_series, rt_structure_set


def _bytes(ds, syntax=None) -> bytes:
    ds = copy.deepcopy(ds)
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    encoding = {"implicit_vr": syntax.is_implicit_VR, "little_endian": syntax.is_little_endian} if syntax else {}
    ds.save_as(buffer, enforce_file_format=True, **encoding)
    return buffer.getvalue()


def _read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def _both(data: bytes, change=lambda ds: ds) -> tuple[bytes, bytes]:
    """(fast path, pydicom) encodings of the same file read twice and changed the same way."""
    fast = b"".join(encode_file_fast(change(_read(data))))
    return fast, encode_with_pydicom(change(_read(data)))


def _sources():
    ct = ct_series()
    for name, ds in (("ct", ct[0]), ("pet", pet_series()[0]), ("rtstruct", rt_structure_set(ct))):
        for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            yield pytest.param(_bytes(ds, syntax), id=f"{name}-{'implicit' if syntax.is_implicit_VR else 'explicit'}")


SOURCES = list(_sources())


@pytest.mark.parametrize("data", SOURCES)
def test_unchanged_file_is_written_byte_for_byte_as_pydicom_writes_it(data):
    fast, reference = _both(data)
    assert fast == reference


@pytest.mark.parametrize("data", SOURCES)
def test_deidentified_file_is_written_byte_for_byte_as_pydicom_writes_it(data):
    fast, reference = _both(data, _deid)
    assert fast == reference
    assert _read(fast) == _read(reference)  # and so element by element, nested sequences included


@pytest.mark.parametrize("data", SOURCES)
def test_decoded_and_edited_elements_are_encoded_as_pydicom_encodes_them(data):
    def edit(ds):
        for element in ds:  # decode everything, nested items too
            if element.VR == "SQ":
                for item in element.value:
                    list(item)
        ds.InstitutionName = "Ærø Hospital"  # Latin-1 text
        ds.add_new(0x00181030, "LO", ["A", "B\\C"][0])
        ds.PatientWeight = 71.25
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.add_new(0x00189302, "CS", "")  # empty
        return ds

    fast, reference = _both(data, edit)
    assert fast == reference


def test_phantom_ct_pet_and_rtstruct_match_pydicom_after_the_pipelines_deidentification(small_phantom):
    paths = [*sorted(small_phantom.ct_dir.glob("*.dcm"))[:3], *sorted(small_phantom.pet_dir.glob("*.dcm"))[:3]]
    paths.append(small_phantom.rtstruct)
    for path in paths:
        fast, reference = _both(path.read_bytes(), _deid)
        assert fast == reference, path.name


def test_pixel_data_is_copied_not_reencoded():
    ds = ct_series()[0]
    ds.Rows = ds.Columns = 256
    ds.PixelData = bytes(range(256)) * 512  # 128 KiB: written as its own chunk
    data = _bytes(ds, ExplicitVRLittleEndian)
    deidentified = _deid(_read(data))
    pixels = deidentified._dict[0x7FE00010]
    assert isinstance(pixels, RawDataElement), "de-identification leaves the pixel data undecoded"
    chunks = encode_file_fast(deidentified)
    assert any(chunk is pixels.value for chunk in chunks), "the pixel bytes are written as they were read"
    assert _read(b"".join(chunks)).PixelData == _read(data).PixelData


def _deferred(data: bytes) -> Dataset:
    """As the ingest reads an upload: values over 64 KiB left in the payload's bytes (dcmread's defer_size)."""
    return pydicom.dcmread(io.BytesIO(data), defer_size=64 * 1024)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_deferred_pixel_data_is_written_from_the_bytes_read_without_a_copy(syntax):
    ds = ct_series()[0]
    ds.Rows = ds.Columns = 256
    ds.PixelData = bytes(range(256)) * 512  # 128 KiB: deferred
    data = _bytes(ds, syntax)
    deidentified = _deid(_deferred(data))
    pixels = deidentified._dict[0x7FE00010]
    assert isinstance(pixels, RawDataElement) and pixels.value is None, "still deferred after de-identification"
    chunks = encode_file_fast(deidentified)
    views = [chunk for chunk in chunks if isinstance(chunk, memoryview)]
    assert len(views) == 1 and views[0].obj is data, "the pixel data is a view of the bytes read, not a copy"
    assert deidentified._dict[0x7FE00010].value is None, "and was not read into the dataset to write it"
    assert b"".join(chunks) == encode_with_pydicom(_deid(_read(data)))


@pytest.mark.parametrize("data", SOURCES)
def test_deferred_values_are_written_as_pydicom_writes_them(data):
    fast = b"".join(encode_file_fast(_deid(pydicom.dcmread(io.BytesIO(data), defer_size=16))))
    assert fast == encode_with_pydicom(_deid(_read(data)))


def test_a_deferred_value_whose_bytes_changed_is_left_to_pydicom():
    ds = ct_series()[0]
    ds.Rows = ds.Columns = 256
    ds.PixelData = bytes(256 * 512)
    data = _bytes(ds, ExplicitVRLittleEndian)
    read = _deferred(data)
    element = read._dict[0x7FE00010]
    read.buffer = io.BytesIO(data[: element.value_tell - 4] + b"\x00\x00\x00\x00" + data[element.value_tell :])
    assert deferred_value(read, element) is None  # the length in the buffer differs: pydicom reads (or refuses)
    read.buffer = io.BytesIO(data[:-2])
    assert deferred_value(read, element) is None  # cut short


def _undefined_lengths(ds):
    ds.ReferencedStudySequence = [Dataset(), Dataset()]
    for number, item in enumerate(ds.ReferencedStudySequence):
        item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        item.ReferencedSOPInstanceUID = f"1.2.3.4.{number}"
        item.is_undefined_length_sequence_item = True
    ds["ReferencedStudySequence"].is_undefined_length = True
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_undefined_length_sequences_and_items_read_from_a_file(syntax):
    data = _bytes(_undefined_lengths(ct_series()[0]), syntax)
    assert b"\xfe\xff\xdd\xe0" in data, "the source really has a sequence delimiter"
    fast, reference = _both(data)
    assert fast == reference
    fast, reference = _both(data, _deid)
    assert fast == reference


def test_encapsulated_pixel_data_is_copied_with_its_undefined_length():
    ds = ct_series()[0]
    ds.PixelData = encapsulate([b"\xff\xd8fake-jpeg-frame\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PhotometricInterpretation = "YBR_FULL_422"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    read = _read(data)
    assert isinstance(read._dict[0x7FE00010], RawDataElement) and read._dict[0x7FE00010].length == 0xFFFFFFFF
    fast, reference = _both(data, _deid)
    assert fast == reference


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_big_endian_and_deflated_files_go_to_pydicom(syntax):
    data = _bytes(ct_series()[0], syntax)
    with pytest.raises(Unsupported):
        encode_file_fast(_read(data))
    assert encode_file(_read(data)) == encode_with_pydicom(_read(data))


def test_a_dataset_to_be_written_in_another_vr_encoding_goes_to_pydicom():
    ds = _read(_bytes(ct_series()[0], ImplicitVRLittleEndian))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # pydicom converts every element
    with pytest.raises(Unsupported):
        encode_file_fast(ds)
    reference = _read(_bytes(ct_series()[0], ImplicitVRLittleEndian))
    reference.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    assert encode_file(ds) == encode_with_pydicom(reference)


def test_a_dataset_built_in_code_goes_to_pydicom():
    ds = ct_series()[0]  # never read from a file: no original encoding
    with pytest.raises(Unsupported):
        encode_file_fast(ds)
    assert encode_file(copy.deepcopy(ds)) == encode_with_pydicom(ds)


def test_file_meta_is_completed_and_synchronised_as_pydicom_does():
    def edit(ds):
        del ds.file_meta.ImplementationVersionName
        del ds.file_meta.FileMetaInformationGroupLength
        ds.SOPInstanceUID = "1.2.3.999"  # file meta follows the dataset
        return ds

    fast, reference = _both(_bytes(ct_series()[0], ExplicitVRLittleEndian), edit)
    assert fast == reference
    assert _read(fast).file_meta.MediaStorageSOPInstanceUID == "1.2.3.999"


def test_a_missing_transfer_syntax_raises_as_pydicom_does():
    ds = _read(_bytes(ct_series()[0], ExplicitVRLittleEndian))
    del ds.file_meta.TransferSyntaxUID
    with pytest.raises(Unsupported):
        encode_file_fast(ds)
    with pytest.raises(Exception) as ours:
        encode_file(copy.deepcopy(ds))
    with pytest.raises(Exception) as theirs:
        encode_with_pydicom(ds)
    assert type(ours.value) is type(theirs.value)


@pytest.mark.dicom_tools
@pytest.mark.skipif(shutil.which("dcmdump") is None, reason="dcmtk not installed")
def test_dcmdump_reads_the_written_file(small_phantom, tmp_path):
    path = sorted(small_phantom.ct_dir.glob("*.dcm"))[0]
    out = tmp_path / "out.dcm"
    out.write_bytes(encode_file(_deid(pydicom.dcmread(path))))
    result = subprocess.run(["dcmdump", "-E", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "CT-HN-0042" in result.stdout and "PixelData" in result.stdout


@pytest.mark.dicom_tools
@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools not installed")
def test_dciodvfy_finds_nothing_more_in_our_file_than_in_pydicoms(small_phantom, tmp_path):
    path = sorted(small_phantom.ct_dir.glob("*.dcm"))[0]
    ours, theirs = tmp_path / "ours.dcm", tmp_path / "theirs.dcm"
    ours.write_bytes(encode_file(_deid(pydicom.dcmread(path))))
    theirs.write_bytes(encode_with_pydicom(_deid(pydicom.dcmread(path))))

    def errors(file):
        result = subprocess.run(["dciodvfy", str(file)], capture_output=True, text=True)
        return sorted(line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error"))

    assert errors(ours) == errors(theirs)
