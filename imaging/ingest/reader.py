"""Read a DICOM file from bytes or by name: exactly `pydicom.dcmread(io.BytesIO(data))` or `dcmread(path)`,
faster for the common case.

Why: pydicom's reader spends some ten microseconds of Python on each element (a generator, a file read
per header, a codec lookup per VR), as much as the rest of the import of an image. For a file with a
preamble, an Explicit VR Little Endian file meta, a dataset in Explicit or Implicit VR Little Endian and no
undefined lengths at its top level (what scanners and our phantom send), this reads the elements straight
from the bytes into the same RawDataElements, with the same offsets, and builds the FileMetaDataset and
FileDataset exactly as pydicom's read_partial does. Anything else, and anything unexpected, goes to
dcmread, which also gives the errors for broken files. The tests compare the two on every kind of file.
"""

import io
import os
import struct

import pydicom
from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.dataset import FileDataset, FileMetaDataset
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


class _NeedMore(Exception):
    """The head of the file read so far does not hold every element the dataset keeps: read all of it."""


HEAD = 16 * 1024  # read first: with the large values deferred, it holds every other element (of an image, usually)


def read(data: bytes, defer_size: int | None = None):
    """The dataset pydicom.dcmread reads from `data` (raising what it raises), with its `defer_size`: values
    longer than that are left in `data` (value None) and read from it when used, as dcmread leaves them in
    its buffer (elements.deferred_value gives them without a copy)."""
    try:
        return _read(data, defer_size)
    except Exception:  # _Fallback, or broken input dcmread should judge (and name) itself
        return pydicom.dcmread(io.BytesIO(data), defer_size=defer_size)


def read_file(path, defer_size: int | None = None):
    """The dataset `pydicom.dcmread(path, defer_size=defer_size)` reads (raising what it raises).

    Deferred values (the pixel data) stay in the file, as dcmread leaves them there, and are copied from it
    when the image is written (elements.FileRange): the file's bytes are read once and let go, so an import
    of many files never holds their pixel data in memory (holding 75 MB of fresh memory for a CT series cost
    more page faults than parsing it).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb", buffering=0) as file:
            status = os.fstat(file.fileno())
            head = file.read(HEAD) if defer_size is not None else file.readall()
            try:  # the elements before the pixel data lie in the head of the file: most often, nothing more is read
                ds = _read(head, defer_size, source=path, size=status.st_size)
            except _NeedMore:
                ds = _read(head + file.readall(), defer_size, source=path)  # the rest after the head
    except Exception:  # _Fallback, or broken input dcmread should judge (and name) itself
        return pydicom.dcmread(path, defer_size=defer_size)
    ds.timestamp = status.st_mtime  # of the bytes read (FileDataset took it from a second look at the file)
    return ds


def _read(data: bytes, defer_size: int | None = None, source: str | None = None, size: int | None = None):
    """The dataset in `data`; with `size`, `data` is the head of a file of that size (_NeedMore where an
    element the dataset holds, not defers, lies beyond the head)."""
    size = len(data) if size is None else size
    if pydicom.config.debugging or pydicom.config.data_element_callback is not None or _DEFAULTS is None:
        raise _Fallback("pydicom is configured to look at every element, or its RawDataElement is different")
    if data[_PREAMBLE : _PREAMBLE + 4] != _PREFIX:
        raise _Fallback("no preamble")
    file_meta, start = _file_meta(data, _PREAMBLE + 4, size)
    if start + 6 > len(data) and len(data) < size:
        raise _NeedMore("the dataset starts beyond the head")
    if start + 2 <= size and data[start : start + 2] == b"\x00\x00":
        raise _Fallback("command set elements")
    syntax = file_meta.get("TransferSyntaxUID")  # decoded, as read_partial does
    if start >= size or syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        raise _Fallback("no dataset, or a transfer syntax other than (Ex|Im)plicit VR Little Endian")
    implicit = syntax == ImplicitVRLittleEndian
    elements, _ = _elements(data, start, implicit, defer_size=defer_size, size=size)
    if source is None:
        fp = io.BytesIO(data)
        fp.seek(0, io.SEEK_END)
    else:
        fp = source  # a file's name, as dcmread(path) gives its dataset
    # As read_partial does, minus the Dataset read_dataset builds first: FileDataset takes only its elements.
    ds = FileDataset(fp, elements, data[:_PREAMBLE], file_meta, implicit, True)
    ds.set_original_encoding(implicit, True, ds._character_set)
    return ds


def _file_meta(data: bytes, start: int, size: int) -> tuple[FileMetaDataset, int]:
    """pydicom's _read_file_meta_info: the group 2 elements, explicit VR, with the first one decoded."""
    elements, end = _elements(data, start, False, group=2, size=size)
    if not elements:
        raise _Fallback("no file meta")
    file_meta = FileMetaDataset(elements)  # read_dataset's Dataset around them would give only its elements
    file_meta.set_original_encoding(is_implicit_vr=False, is_little_endian=True, character_encoding=default_encoding)
    file_meta[min(elements, key=int)]  # pydicom decodes the first element to test the encoding
    return file_meta, end


def _elements(
    data: bytes,
    position: int,
    implicit: bool,
    group: int | None = None,
    defer_size: int | None = None,
    size: int | None = None,
) -> tuple[dict, int]:
    """pydicom's data_element_generator for little endian data, defined lengths only; with `group`, up to
    the first element of another group; with `defer_size`, longer values deferred (None) as it defers them;
    with `size`, `data` is the head of a file of that size (_NeedMore where more of it is needed).
    Returns the elements and where reading stopped."""
    elements: dict = {}
    available = len(data)
    end = available if size is None else size
    whole = available >= end
    first = data[position + 4 : position + 6]
    if len(first) == 2 and (0x40 < first[0] < 0x5B and 0x40 < first[1] < 0x5B) == implicit:
        raise _Fallback("the data is not encoded as its transfer syntax says")  # pydicom warns and switches
    limit = defer_size if defer_size is not None else 0xFFFFFFFF  # no defined length is longer
    tags, new, element_type = _TAGS, tuple.__new__, RawDataElement  # RawDataElement(...), minus a call
    while position + 8 <= end:
        if not whole and position + 12 > available:
            raise _NeedMore("an element header beyond the head")
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
            if not whole and value_tell + length > available:
                raise _NeedMore("a value beyond the head")
            value = data[value_tell : value_tell + length] if length else empty_value_for_VR(vr, raw=True)
        position = value_tell + length
        key = tags.get(tag)
        if key is None:
            key = BaseTag(tag)
            if len(tags) < _TAGS_MAX:
                tags[tag] = key
        elements[key] = new(element_type, (key, vr, length, value, value_tell, implicit, True, *_DEFAULTS))
    return elements, min(position, end)
