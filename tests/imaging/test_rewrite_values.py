"""Byte-level values (imaging/dicom/elements.py) and de-identification at that level: the same as pydicom."""

import io

import pydicom
import pytest
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import DSfloat, PersonName
from pydicom.values import convert_value

import imaging.dicom.deid as deid_module
from imaging.dicom.deid import deidentify
from imaging.dicom.elements import canonical, encode_value, string_values, uid_value, value_of
from tests.imaging.synthetic_pet import ct_series, pet_series, rt_structure_set

SALT = bytes(range(32))


def _pydicom_value_bytes(vr, value, encodings=None):
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_data_element(buffer, DataElement(0x00091010 if vr == "UN" else 0x00080000 + 0x0100, vr, value), encodings)
    return buffer.getvalue()[8:]  # implicit VR: tag and length first


@pytest.mark.parametrize(
    ("vr", "value"),
    [
        ("UI", "1.2.3"),
        ("UI", "1.2.34"),
        ("UI", ["1.2.3", "1.2.345"]),
        ("DA", "20240131"),
        ("DA", "20240101-20240131"),
        ("DT", "20240131093000.5+0100"),
        ("TM", "0930"),
        ("CS", ["ORIGINAL", "PRIMARY", "AXIAL"]),
        ("CS", ""),
        ("AS", "045Y"),
        ("LO", "Ærø Hospital"),
        ("LO", ["A", "BC"]),
        ("SH", "X"),
        ("PN", PersonName("DOE^JANE")),
        ("DS", DSfloat("1.50")),
        ("DS", MultiValue(DSfloat, ["-245.4156", "0.0", "1"])),
        ("IS", 7),
        ("US", 512),
        ("SS", -3),
        ("UL", 70000),
        ("FD", 0.125),
        ("OB", b"\x00\x01\x02"),
        ("OW", b"\x01\x02"),
        ("UI", None),
    ],
)
def test_encode_value_gives_pydicoms_bytes(vr, value):
    assert encode_value(vr, value, ["latin_1"]) == _pydicom_value_bytes(vr, value, ["latin_1"])


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.parametrize(
    "data",
    [b"1.2.3\x00", b"1.2.34", b"1.2\\3.4 ", b"", b"  ", b"20240101-20240131 ", b"1.2\\\\3\x00", b" 1.2 \\ 3 \x00"],
)
def test_string_values_are_what_pydicom_decodes(data):
    for vr in ("UI", "DA"):
        raw = RawDataElement(pydicom.tag.Tag(0x00080018), vr, len(data), data, 0, False, True)
        decoded = convert_value(vr, raw)
        if isinstance(decoded, list | MultiValue):
            expected = [str(v) for v in decoded]
        else:
            expected = [str(decoded)] if decoded else []
        assert string_values(data, vr) == expected
        if vr == "UI":
            assert uid_value(raw) == (expected if len(expected) > 1 else "".join(expected))


@pytest.mark.parametrize(("data", "expected"), [(b"1.2.3\x00", True), (b"1.2.34", True), (b"1.2.3 ", False)])
def test_canonical_means_decoding_and_writing_again_gives_the_bytes_back(data, expected):
    raw = RawDataElement(pydicom.tag.Tag(0x00080018), "UI", len(data), data, 0, False, True)
    assert canonical(raw, "UI", [default_encoding]) is expected


def test_value_of_reads_without_decoding_into_the_dataset():
    source = ct_series()[0]
    ds, decoded = _read(source, ExplicitVRLittleEndian), _read(source, ExplicitVRLittleEndian)
    for tag, keyword in ((0x00280010, "Rows"), (0x00080060, "Modality"), (0x00200032, "ImagePositionPatient")):
        assert value_of(ds, tag) == decoded.get(keyword)
        assert isinstance(ds._dict[tag], RawDataElement)
    assert value_of(ds, 0x00189999, "absent") == "absent"


def test_a_value_read_again_from_the_same_bytes_is_decoded_with_each_datasets_character_set():
    """value_of reuses values converted before: the same bytes under another character set decode anew."""
    latin, greek = ct_series()[0], ct_series()[0]
    latin.SpecificCharacterSet, greek.SpecificCharacterSet = "ISO_IR 100", "ISO_IR 126"
    latin.InstitutionName, greek.InstitutionName = "\xe1\xe2", "\u03b1\u03b2"  # the same two bytes, 0xE1 0xE2
    first, second = _read(latin, ExplicitVRLittleEndian), _read(greek, ExplicitVRLittleEndian)
    assert first._dict[0x00080080].value == second._dict[0x00080080].value == b"\xe1\xe2"
    for _ in range(2):  # the second round is answered from what the first converted
        assert value_of(first, 0x00080080) == "\xe1\xe2" and value_of(second, 0x00080080) == "\u03b1\u03b2"
        assert value_of(first, 0x00280010) == value_of(second, 0x00280010) == first.Rows


def _read(ds, syntax):
    ds.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=syntax.is_implicit_VR)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _written(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _sources():
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        ct = ct_series()
        for name, ds in (("ct", ct[0]), ("pet", pet_series()[0]), ("rtstruct", rt_structure_set(ct))):
            yield pytest.param(ds, syntax, id=f"{name}-{'implicit' if syntax.is_implicit_VR else 'explicit'}")


@pytest.mark.parametrize(("source", "syntax"), list(_sources()))
def test_deidentification_at_the_byte_level_equals_the_decoded_one(source, syntax, monkeypatch):
    arguments = {"pseudonym": "CT-HN-0042", "salt": SALT, "date_shift_days": -123, "copy_input": False}
    fast = deidentify(_read(source, syntax), **arguments)
    assert isinstance(fast.dataset._dict[0x00080018], RawDataElement), "the byte-level path was taken"
    monkeypatch.setattr(deid_module, "default_decoding", lambda: False)  # every value decoded, as pydicom does
    decoded = deidentify(_read(source, syntax), **arguments)
    assert not isinstance(decoded.dataset._dict[0x00080018], RawDataElement)
    assert fast.dataset == decoded.dataset
    assert fast.dataset.file_meta == decoded.dataset.file_meta
    assert fast.uid_map == decoded.uid_map
    assert _written(fast.dataset) == _written(decoded.dataset)


def test_byte_level_deidentification_of_the_phantom_equals_the_decoded_one(small_phantom, monkeypatch):
    paths = [*sorted(small_phantom.ct_dir.glob("*.dcm"))[:2], *sorted(small_phantom.pet_dir.glob("*.dcm"))[:2]]
    paths.append(small_phantom.rtstruct)
    arguments = {"pseudonym": "PHANTOM-T", "salt": SALT, "date_shift_days": -400, "copy_input": False}
    fast = [deidentify(pydicom.dcmread(path), **arguments) for path in paths]
    monkeypatch.setattr(deid_module, "default_decoding", lambda: False)
    for path, result in zip(paths, fast, strict=True):
        decoded = deidentify(pydicom.dcmread(path), **arguments)
        assert result.dataset == decoded.dataset, path.name
        assert _written(result.dataset) == _written(decoded.dataset), path.name


def test_a_memo_shared_by_a_series_changes_nothing(small_phantom):
    paths = sorted(small_phantom.ct_dir.glob("*.dcm"))[:6]
    arguments = {"pseudonym": "PHANTOM-T", "salt": SALT, "date_shift_days": -400, "copy_input": False}
    memo: dict = {}
    shared = [deidentify(pydicom.dcmread(path), memo=memo, **arguments) for path in paths]
    assert memo, "values recurring in the series were memoised"
    for path, result in zip(paths, shared, strict=True):
        alone = deidentify(pydicom.dcmread(path), **arguments)
        assert result.dataset == alone.dataset and result.uid_map == alone.uid_map, path.name
        assert _written(result.dataset) == _written(alone.dataset), path.name
