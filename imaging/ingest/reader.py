"""Read a DICOM file from bytes: exactly `pydicom.dcmread(io.BytesIO(data))`, faster for the common case.

Why: pydicom's reader spends some ten microseconds of Python on each element (a generator, a file read
per header, a codec lookup per VR), as much as the rest of the import of an image. For a file with a
preamble, an Explicit VR Little Endian file meta, a dataset in Explicit or Implicit VR Little Endian and no
undefined lengths at its top level (what scanners and our phantom send), this reads the elements straight
from the bytes into the same RawDataElements, with the same offsets, and builds the FileMetaDataset and
FileDataset exactly as pydicom's read_partial does. Anything else, and anything unexpected, goes to
dcmread, which also gives the errors for broken files. The tests compare the two on every kind of file.
"""

import io
import struct

import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

_HEADER = struct.Struct("<HH2sH").unpack_from
_IMPLICIT_HEADER = struct.Struct("<HHL").unpack_from
_LONG_LENGTH = struct.Struct("<L").unpack_from
_GROUP = struct.Struct("<H").unpack_from
_LONG_VRS = frozenset(str(vr).encode() for vr in EXPLICIT_VR_LENGTH_32)
_VRS = {str(vr).encode(): (str(vr), str(vr).encode() in _LONG_VRS) for vr in VR if len(str(vr)) == 2}
_UNKNOWN_VR = (None, False)
# The fields of a RawDataElement after is_little_endian, with their defaults (is_raw, is_buffered): the
# reader builds the tuples itself, which is what RawDataElement(...) does, minus a Python call. None (and
# dcmread reads every file) should a pydicom version order the fields differently.
_FIELDS = ("tag", "VR", "length", "value", "value_tell", "is_implicit_VR", "is_little_endian")
_DEFAULTS = (
    tuple(RawDataElement._field_defaults[name] for name in RawDataElement._fields[7:])
    if RawDataElement._fields[:7] == _FIELDS and set(RawDataElement._fields[7:]) <= set(RawDataElement._field_defaults)
    else None
)
_ITEM_DELIMITER = 0xFFFEE00D
_CHARACTER_SET = 0x00080005
_PREAMBLE, _PREFIX = 128, b"DICM"
# One BaseTag object per tag number, shared by every dataset read: BaseTag (an int subclass with a __dict__)
# is tracked by the garbage collector, and an import holds some ninety of them per image alive at once,
# which made the collector's full passes (a tenth of a second each in a Django process) come twice as often.
# Tags are immutable, so sharing them is safe; the cache is bounded by the number of distinct tags seen.
_TAGS: dict[int, BaseTag] = {}
_TAGS_MAX = 1 << 16


class _Fallback(Exception):
    """Not the common case: pydicom reads this file."""


def read(data: bytes, defer_size: int | None = None):
    """The dataset pydicom.dcmread reads from `data` (raising what it raises), with its `defer_size`: values
    longer than that are left in `data` (value None) and read from it when used, as dcmread leaves them in
    its buffer (elements.deferred_value gives them without a copy)."""
    try:
        return _read(data, defer_size)
    except Exception:  # _Fallback, or broken input dcmread should judge (and name) itself
        return pydicom.dcmread(io.BytesIO(data), defer_size=defer_size)


def _read(data: bytes, defer_size: int | None = None) -> FileDataset:
    if pydicom.config.debugging or pydicom.config.data_element_callback is not None or _DEFAULTS is None:
        raise _Fallback("pydicom is configured to look at every element, or its RawDataElement is different")
    if data[_PREAMBLE : _PREAMBLE + 4] != _PREFIX:
        raise _Fallback("no preamble")
    file_meta, start = _file_meta(data, _PREAMBLE + 4)
    if start + 2 <= len(data) and data[start : start + 2] == b"\x00\x00":
        raise _Fallback("command set elements")
    syntax = file_meta.get("TransferSyntaxUID")  # decoded, as read_partial does
    if start >= len(data) or syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        raise _Fallback("no dataset, or a transfer syntax other than (Ex|Im)plicit VR Little Endian")
    implicit = syntax == ImplicitVRLittleEndian
    elements, _ = _elements(data, start, implicit, defer_size=defer_size)
    dataset = _dataset(elements, implicit)
    fp = io.BytesIO(data)
    fp.seek(0, io.SEEK_END)
    ds = FileDataset(fp, dataset, data[:_PREAMBLE], file_meta, implicit, True)  # as read_partial does
    ds.set_original_encoding(implicit, True, dataset._character_set)
    return ds


def _file_meta(data: bytes, start: int) -> tuple[FileMetaDataset, int]:
    """pydicom's _read_file_meta_info: the group 2 elements, explicit VR, with the first one decoded."""
    elements, end = _elements(data, start, False, group=2)
    if not elements:
        raise _Fallback("no file meta")
    file_meta = FileMetaDataset(_dataset(elements, False))
    file_meta.set_original_encoding(is_implicit_vr=False, is_little_endian=True, character_encoding=default_encoding)
    file_meta[min(elements, key=int)]  # pydicom decodes the first element to test the encoding
    return file_meta, end


def _dataset(elements: dict, implicit: bool) -> Dataset:
    """As read_dataset builds a dataset from its elements."""
    dataset = Dataset(elements, parent_encoding=default_encoding)
    encoding = default_encoding
    if _CHARACTER_SET in elements:
        encoding = convert_encodings(convert_raw_data_element(elements[BaseTag(_CHARACTER_SET)]).value)
    dataset.set_original_encoding(implicit, True, encoding)
    return dataset


def _elements(
    data: bytes, position: int, implicit: bool, group: int | None = None, defer_size: int | None = None
) -> tuple[dict, int]:
    """pydicom's data_element_generator for little endian data, defined lengths only; with `group`, up to
    the first element of another group; with `defer_size`, longer values deferred (None) as it defers them.
    Returns the elements and where reading stopped."""
    elements: dict = {}
    end = len(data)
    first = data[position + 4 : position + 6]
    if len(first) == 2 and (0x40 < first[0] < 0x5B and 0x40 < first[1] < 0x5B) == implicit:
        raise _Fallback("the data is not encoded as its transfer syntax says")  # pydicom warns and switches
    limit = defer_size if defer_size is not None else 0xFFFFFFFF  # no defined length is longer
    tags, new, element_type = _TAGS, tuple.__new__, RawDataElement  # RawDataElement(...), minus a call
    while position + 8 <= end:
        if group is not None and _GROUP(data, position)[0] != group:
            break  # pydicom's stop_when: the element is left for the next reader
        if implicit:
            tag_group, number, length = _IMPLICIT_HEADER(data, position)
            vr = None
            value_tell = position + 8
        else:
            tag_group, number, vr_bytes, length = _HEADER(data, position)
            vr, long = _VRS.get(vr_bytes, _UNKNOWN_VR)
            if vr is None:
                raise _Fallback(f"VR {vr_bytes!r}")
            if long:
                if position + 12 > end:
                    raise _Fallback("truncated header")
                (length,) = _LONG_LENGTH(data, position + 8)
                value_tell = position + 12
            else:
                value_tell = position + 8
        tag = tag_group << 16 | number
        if tag == _ITEM_DELIMITER:
            break
        if length == 0xFFFFFFFF:
            raise _Fallback("undefined length")
        if length > limit and tag != _CHARACTER_SET:
            value = None  # left in the buffer, read when used (also where the file is cut short, as pydicom)
        else:  # a value runs short at the end of a truncated file, as pydicom's read() does
            value = data[value_tell : value_tell + length] if length else empty_value_for_VR(vr, raw=True)
        position = value_tell + length
        key = tags.get(tag)
        if key is None:
            key = BaseTag(tag)
            if len(tags) < _TAGS_MAX:
                tags[tag] = key
        elements[key] = new(element_type, (key, vr, length, value, value_tell, implicit, True, *_DEFAULTS))
    return elements, min(position, end)
