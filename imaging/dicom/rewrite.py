"""Encode a dataset as a DICOM file: the bytes of pydicom's `save_as(enforce_file_format=True)`, faster.

Why: after de-identification most elements (the pixel data above all) are undecoded RawDataElements, and
pydicom writes those verbatim anyway, but spends tens of microseconds of Python per element doing so.
Here undecoded elements are copied behind a struct-packed header, common decoded values are encoded as
pydicom's writers encode them (elements.py), and everything else goes through pydicom's own element
writer, so the output is byte for byte pydicom's (the tests compare them). Where pydicom decodes an
element before writing it (file meta UIDs, SOP UIDs, pixel data) its bytes are kept only if decoding
and encoding them again gives the same bytes. Whatever this module does not mirror exactly (big endian,
deflate, a dataset read in another VR encoding or character set than it is written in, a private or
missing transfer syntax, a non-conformant preamble or file meta) is handed to pydicom's writer whole.
"""

import io
import struct
from operator import itemgetter

from pydicom import __version_info__, config
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import AMBIGUOUS_VR, EXPLICIT_VR_LENGTH_32, STANDARD_VR

from imaging.dicom.elements import (
    DeferredValueChanged,
    FileRange,
    canonical,
    decoded_vr,
    default_decoding,
    deferred_value,
    encode_value,
    is_empty,
    peek,
    uid_value,
)

UNDEFINED = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
GROUP_LENGTH = 0x00020000
SOP_CLASS_UID, SOP_INSTANCE_UID = 0x00080016, 0x00080018
_ENCAPSULATED_START = b"\xfe\xff\x00\xe0"  # an Item tag, little endian: how encapsulated pixel data begins
_ITEM = struct.pack("<HH", 0xFFFE, 0xE000)
_ITEM_END = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
_SEQUENCE_END = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_SHORT_HEADER = struct.Struct("<HH2sH")  # explicit VR, 16-bit length
_LONG_HEADER = struct.Struct("<HH2s2xL")  # explicit VR, reserved bytes, 32-bit length
_SHORT_UNDEFINED_HEADER = struct.Struct("<HH2sL")  # pydicom's header for a short VR of undefined length
_IMPLICIT_HEADER = struct.Struct("<HHL")
_UL = struct.Struct("<L")
_VR_BYTES = {str(vr): str(vr).encode() for vr in STANDARD_VR}
_LONG_VR_BYTES = frozenset(vr.encode() for vr in _LONG_VRS)
_DEFAULT_CODECS = [default_encoding]
_first = itemgetter(0)
_SMALL_CHUNK = 1 << 16
# memoryview: a deferred value, read from the buffer without a copy; FileRange: one still in the file read
_BYTES = (bytes, memoryview, FileRange)


class Unsupported(Exception):
    """The fast path does not mirror pydicom for this dataset; pydicom's writer is used instead."""


def encode_file(ds: Dataset) -> bytes:
    """The DICOM file pydicom's `ds.save_as(..., enforce_file_format=True)` writes, as bytes."""
    return b"".join(chunk.read() if type(chunk) is FileRange else chunk for chunk in encode_file_chunks(ds))


def encode_file_chunks(ds: Dataset) -> list[bytes | memoryview | FileRange]:
    """As encode_file, as chunks to write one after the other (no copy of the pixel data: a view of the bytes
    it was read from, or a FileRange to copy it from its file)."""
    try:
        return encode_file_fast(ds)
    except DeferredValueChanged:
        raise  # pydicom would read the file as it is now
    except Exception:  # Unsupported, or something pydicom should accept or refuse in its own words
        return [encode_with_pydicom(ds)]


def encode_with_pydicom(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def encode_file_fast(ds: Dataset) -> list[bytes]:
    """The file as a list of chunks; raises Unsupported where pydicom must write it (having only decoded)."""
    if config._use_future or not default_decoding() or not ds._dict or min(ds._dict, key=int) >> 16 <= 2:
        raise Unsupported("pydicom configured differently, no elements, or command / file meta elements")
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        raise Unsupported("no file meta")
    syntax = _value(meta, 0x00020010)
    if not isinstance(syntax, str):
        raise Unsupported(f"transfer syntax {syntax!r}")
    syntax = UID(syntax)
    if (
        syntax.is_private
        or not syntax.is_transfer_syntax
        or not syntax.is_little_endian
        or syntax == DeflatedExplicitVRLittleEndian
    ):
        raise Unsupported(f"transfer syntax {syntax!r}")
    implicit = syntax.is_implicit_VR
    preamble = getattr(ds, "preamble", None)
    if preamble and len(preamble) != 128:
        raise Unsupported("preamble is not 128 bytes")
    if (implicit, True) != ds.original_encoding or ds.original_character_set != ds._character_set:
        raise Unsupported("dataset is re-encoded (VR style or character set changed)")
    meta_chunks = _file_meta(meta, ds)
    _pixel_data_length(ds, syntax.is_compressed, implicit)
    chunks = [preamble or b"\x00" * 128, b"DICM", *meta_chunks]
    _dataset(ds, implicit, default_encoding, chunks, decoded_by_pydicom=(SOP_CLASS_UID, SOP_INSTANCE_UID))
    return _coalesced(chunks)


def _coalesced(chunks: list[bytes]) -> list[bytes]:
    """Small chunks joined: a few large ones are cheaper to hash and write (the pixel data stays as it is)."""
    out, small = [], []
    for chunk in chunks:
        if type(chunk) is not FileRange and len(chunk) < _SMALL_CHUNK:
            small.append(chunk)
            continue
        if small:
            out.append(b"".join(small))
            small = []
        out.append(chunk)
    if small:
        out.append(b"".join(small))
    return out


def _value(ds: Dataset, tag: int):
    """What `ds.get(keyword)` gives for a UI element (None when absent), with str for UID: raw elements are
    peeked at (elements.uid_value), not decoded."""
    element = ds._dict.get(tag)
    if element is None:
        return None
    if type(element) is RawDataElement and type(element.value) is bytes and decoded_vr(element, tag) == "UI":
        return uid_value(element)
    return ds[tag].value


def _pixel_data_length(ds: Dataset, compressed: bool, implicit: bool) -> None:
    """pydicom decodes the pixel data to mark it undefined length exactly when encapsulated: do the same,
    unless the raw element already reads that way and would be written back unchanged."""
    element = ds._dict.get(PIXEL_DATA)
    if element is None:
        return
    value = element.value if type(element) is RawDataElement else None
    if value is None:
        value = deferred_value(ds, element)
    if type(element) is RawDataElement and (
        type(value) in _BYTES
        and not len(value) % 2
        and (element.length == UNDEFINED) == compressed
        and (implicit or element.VR in ("OB", "OW"))
    ):
        return
    ds[PIXEL_DATA].is_undefined_length = compressed


def _file_meta(meta, ds: Dataset) -> list[bytes]:
    """File meta as pydicom writes it: class/instance UIDs from the dataset, required elements added."""
    if any(tag >> 16 != 2 for tag in meta._dict):
        raise Unsupported("non-group-2 element in file meta")
    elements = dict(meta._dict)
    for meta_tag, ds_tag in ((0x00020002, SOP_CLASS_UID), (0x00020003, SOP_INSTANCE_UID)):
        current, from_ds = _value(meta, meta_tag), _value(ds, ds_tag)
        if current is None or (from_ds and from_ds != current):
            vr = meta[meta_tag].VR if meta_tag in meta else "UI"
            elements[meta_tag] = DataElement(meta_tag, vr, from_ds)
    for tag, vr, value in ((0x00020001, "OB", b"\x00\x01"), (0x00020012, "UI", UID(PYDICOM_IMPLEMENTATION_UID))):
        if tag not in elements or _empty(meta, elements, tag):
            elements[tag] = DataElement(tag, meta[tag].VR if tag in elements else vr, value)
    if 0x00020013 not in elements:
        elements[0x00020013] = DataElement(0x00020013, "SH", f"PYDICOM {'.'.join(__version_info__)}")
    for tag in (0x00020002, 0x00020003, 0x00020010):
        if tag not in elements or _empty(meta, elements, tag):
            raise Unsupported("required file meta element missing")  # pydicom raises its own error
    group_length = elements.pop(GROUP_LENGTH, None)
    if group_length is not None and (
        group_length.VR != "UL" or (type(group_length) is RawDataElement and group_length.length != 4)
    ):
        raise Unsupported("odd file meta group length element")
    reencode = meta.original_encoding != (False, True) or meta.original_character_set != meta._character_set
    body: list[bytes] = []
    for tag in sorted(elements, key=int):
        element = elements[tag]
        if type(element) is RawDataElement and (reencode or not _kept_raw(element, tag, _PYDICOM_DECODES_META)):
            element = meta[tag]  # decoded, as pydicom does before writing it
        _element(tag, element, False, default_encoding, _DEFAULT_CODECS, body)
    return [_SHORT_HEADER.pack(2, 0, b"UL", 4), _UL.pack(sum(map(len, body))), *body]


# File meta elements pydicom decodes (in its copy of the file meta) before writing them.
_PYDICOM_DECODES_META = frozenset({0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012})


def _empty(meta, elements: dict, tag: int) -> bool:
    element = elements[tag]
    if type(element) is RawDataElement:
        vr = decoded_vr(element, tag)
        if vr is None or type(element.value) is not bytes:
            return meta[tag].is_empty
        return is_empty(vr, uid_value(element) if vr == "UI" else peek(element, vr))
    return element.is_empty


def _kept_raw(element: RawDataElement, tag: int, decoded_by_pydicom) -> bool:
    """Whether a raw element pydicom would decode before writing can be written as it is."""
    if tag not in decoded_by_pydicom:
        return True
    vr = decoded_vr(element, tag)
    return vr is not None and canonical(element, vr, _DEFAULT_CODECS)


def _dataset(ds: Dataset, implicit: bool, parent_encoding, out: list[bytes], decoded_by_pydicom=()) -> None:
    """Mirror of pydicom's write_dataset for a dataset in the encoding it was read in."""
    encodings = ds.get("SpecificCharacterSet", parent_encoding)
    codecs = convert_encodings(encodings or [default_encoding])
    elements = ds._dict
    append = out.append
    for tag, element in sorted(zip(map(int, elements), elements.values(), strict=True), key=_first):
        if not tag & 0xFFFF and tag >> 16 > 6:
            continue  # retired group lengths are not written
        if type(element) is RawDataElement:
            value = element.value
            if value is None and tag not in decoded_by_pydicom:
                value = deferred_value(ds, element)  # the pixel data, left in the bytes it was read from
            if value is None or (tag in decoded_by_pydicom and not _kept_raw(element, tag, decoded_by_pydicom)):
                element = ds[tag]  # a deferred read, or an element pydicom decodes before writing
            elif type(value) in _BYTES and element.length != UNDEFINED:  # the common case, inline
                length = len(value)
                if implicit:
                    append(_IMPLICIT_HEADER.pack(tag >> 16, tag & 0xFFFF, length))
                    append(value)
                    continue
                vr = _VR_BYTES.get(element.VR)
                if vr is not None and (length <= 0xFFFF or vr in _LONG_VR_BYTES):
                    header = _LONG_HEADER if vr in _LONG_VR_BYTES else _SHORT_HEADER
                    append(header.pack(tag >> 16, tag & 0xFFFF, vr, length))
                    append(value)
                    continue
            if element.value is None:
                element = ds[tag]  # a deferred value the inline case does not write: read as pydicom reads it
        _element(tag, element, implicit, encodings, codecs, out)


def _element(tag: int, element, implicit: bool, encodings, codecs: list[str], out: list[bytes]) -> None:
    if type(element) is RawDataElement:
        if _raw(tag, element, implicit, out):
            return
    elif element.VR == "SQ" and not element.is_buffered:
        _sequence(tag, element, implicit, encodings, out)
        return
    elif _decoded(tag, element, implicit, codecs, out):
        return
    buffer = DicomBytesIO()  # anything else: pydicom's own element writer
    buffer.is_little_endian = True
    buffer.is_implicit_VR = implicit
    write_data_element(buffer, element, encodings)
    out.append(buffer.getvalue())


def _header(tag: int, vr: str | None, length: int, implicit: bool, undefined: bool) -> bytes:
    group, number = tag >> 16, tag & 0xFFFF
    if implicit:
        return _IMPLICIT_HEADER.pack(group, number, UNDEFINED if undefined else length)
    if vr in _LONG_VRS:
        return _LONG_HEADER.pack(group, number, vr.encode(), UNDEFINED if undefined else length)
    if undefined:
        return _SHORT_UNDEFINED_HEADER.pack(group, number, vr.encode(), UNDEFINED)
    return _SHORT_HEADER.pack(group, number, vr.encode(), length)


def _framed(tag: int, vr, value: bytes, implicit: bool, undefined: bool, out: list[bytes]) -> bool:
    if undefined and tag == PIXEL_DATA and not value.startswith(_ENCAPSULATED_START):
        return False  # pydicom refuses this, with its own message
    if not implicit and not undefined and vr not in _LONG_VRS and len(value) > 0xFFFF:
        return False  # pydicom changes the VR to UN, with a warning
    out.append(_header(tag, vr, len(value), implicit, undefined))
    out.append(value)
    if undefined:
        out.append(_SEQUENCE_END)
    return True


def _raw(tag: int, element: RawDataElement, implicit: bool, out: list[bytes]) -> bool:
    """An undecoded element, copied as pydicom copies it; False where pydicom must write it."""
    value, vr = element.value, element.VR
    if type(value) is not bytes or (not implicit and (vr is None or len(vr) != 2)):
        return False
    return _framed(tag, vr, value, implicit, element.length == UNDEFINED, out)


def _decoded(tag: int, element: DataElement, implicit: bool, codecs: list[str], out: list[bytes]) -> bool:
    """A decoded element whose value elements.encode_value encodes; False for anything else."""
    vr = element.VR
    if element.is_buffered or not isinstance(vr, str) or (not implicit and len(vr) != 2):
        return False
    value = encode_value(vr, element.value, codecs)
    return value is not None and _framed(tag, vr, value, implicit, element.is_undefined_length, out)


def _sequence(tag: int, element: DataElement, implicit: bool, encodings, out: list[bytes]) -> None:
    """Mirror of pydicom's sequence writing: items of defined length unless read with undefined length."""
    encodings = convert_encodings(encodings or [default_encoding])
    body: list[bytes] = []
    for item in element.value or ():
        content: list[bytes] = []
        reencoded = item.original_encoding != (implicit, True) or item.original_character_set != item._character_set
        if reencoded and not _all_decoded(item):
            buffer = DicomBytesIO()  # pydicom re-encodes such items element by element: let it
            buffer.is_little_endian = True
            buffer.is_implicit_VR = implicit
            write_dataset(buffer, item, parent_encoding=encodings)
            content.append(buffer.getvalue())
        else:
            _dataset(item, implicit, encodings, content)
        if getattr(item, "is_undefined_length_sequence_item", False):
            body += [_ITEM, _UL.pack(UNDEFINED), *content, _ITEM_END]
        else:
            body += [_ITEM, _UL.pack(sum(map(len, content))), *content]
    undefined = element.is_undefined_length
    out.append(_header(tag, "SQ", sum(map(len, body)), implicit, undefined))
    out += body
    if undefined:
        out.append(_SEQUENCE_END)


def _all_decoded(item: Dataset) -> bool:
    """Only decoded elements of unambiguous VR, no sequences (items built in code): pydicom's re-encoding
    of such an item (VR correction, decoding every element) changes nothing, so it can take the fast path."""
    return all(type(e) is not RawDataElement and e.VR != "SQ" and e.VR not in AMBIGUOUS_VR for e in item._dict.values())


__all__ = ["Unsupported", "encode_file", "encode_file_chunks", "encode_file_fast", "encode_with_pydicom"]
