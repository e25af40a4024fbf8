"""Element values at the byte level, decoded and encoded exactly as pydicom decodes and writes them.

Why: pydicom's per-element machinery (DataElement objects, value validation, dataset bookkeeping) costs
tens of microseconds an element, the bulk of de-identifying and writing an image. Here a value is read
with pydicom's own converter without building an element, and a new value is stored as the bytes
pydicom's writer would produce for it, in a RawDataElement, as if read from a file: decoding it gives the
value back, writing it copies the bytes. Anything these functions do not mirror exactly makes them
answer None (or False), and the caller takes pydicom's ordinary path.
"""

import io
import os
import struct
from codecs import lookup as codec_lookup

from pydicom import config
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.filewriter import write_numbers, writers
from pydicom.hooks import hooks, raw_element_value, raw_element_vr
from pydicom.multival import MultiValue
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, PersonName
from pydicom.values import convert_value

_STRING_PADDING = {"AE": " ", "AS": " ", "CS": " ", "DA": " ", "DT": " ", "TM": " ", "UI": "\0"}
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
_NUMBER_STRING_VRS = frozenset({"DS", "IS"})
_BYTES_VRS = frozenset({"OB", "OW"})
_NUMBER_FORMATS = {vr: "<" + fmt for vr, (writer, fmt) in writers.items() if writer is write_numbers}
# pydicom's default_encoding ("iso8859") is Latin-1; named so, Python skips the codec registry lookup.
_LATIN_1 = "latin-1" if codec_lookup(default_encoding).name == codec_lookup("latin-1").name else default_encoding
PLAIN_CODECS = frozenset({"iso8859", "latin_1", "utf_8", "ascii"})  # encode_string is a plain str.encode


def default_decoding() -> bool:
    """Whether pydicom decodes raw elements the stock way (no hooks, callbacks or strict validation)."""
    return (
        hooks.raw_element_vr is raw_element_vr
        and hooks.raw_element_value is raw_element_value
        and not hooks.raw_element_kwargs
        and config.data_element_callback is None
        and config.settings.reading_validation_mode != config.RAISE
        and not config.datetime_conversion
        and not config.use_none_as_empty_text_VR_value
    )


def decoded_vr(element, tag: int) -> str | None:
    """The VR decoding gives an element, where that is plain to see: None for UN and unknown tags."""
    vr = element.VR
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return None
    return None if vr == "UN" or " or " in vr else vr


def peek(element, vr: str, encodings=None):
    """The value of a raw element as pydicom would decode it, without decoding it into the dataset."""
    if type(element) is not RawDataElement:
        return element.value
    return convert_value(vr, element, encodings)


def string_values(data: bytes, vr: str) -> list[str]:
    """The values of a raw UI, DA or DT element as the strings pydicom decodes (as its multi_string
    does: trailing spaces and NULs dropped, split at backslashes, and for UIDs each one stripped, as UID()
    does; nothing for an empty value)."""
    text = data.decode(_LATIN_1).rstrip(" \x00")
    if not text:
        return []
    values = text.split("\\")
    return [value.strip() for value in values] if vr == "UI" else values


def uid_text(ds, tag: int) -> str | None:
    """str(value) of a single-valued UI element (None when absent), read from its bytes where undecoded: the
    text pydicom would decode, without building a UID (which validates it)."""
    element = ds._dict.get(tag)
    if element is None:
        return None
    raw_ui = type(element) is RawDataElement and type(element.value) is bytes and decoded_vr(element, tag) == "UI"
    value = uid_value(element) if raw_ui and default_decoding() else None
    return value if isinstance(value, str) else str(ds[tag].value)


def value_of(ds, tag: int, default=None):
    """`ds.get(keyword, default)` for the element `tag`, without decoding it into the dataset where pydicom
    would decode its bytes the stock way: for reading a few values of many datasets cheaply."""
    element = ds._dict.get(tag)
    if element is None:
        return default
    if type(element) is RawDataElement and type(element.value) is bytes and default_decoding():
        vr = decoded_vr(element, tag)
        if vr is not None and vr != "SQ":
            encodings = _encodings_for(ds, vr)
            charsets = tuple(encodings) if isinstance(encodings, list) else encodings
            key = (vr, element.value, element.is_little_endian, charsets)
            value = _CONVERTED.get(key)
            if value is None:
                value = convert_value(vr, element, encodings)
                if type(value) in _SHAREABLE and len(element.value) <= _CONVERTED_BYTES:
                    if len(_CONVERTED) >= _CONVERTED_MAX:
                        _CONVERTED.clear()
                    _CONVERTED[key] = value
            return value
    return ds[tag].value


# Values converted before, by (VR, bytes, byte order, character sets): the same Rows, Modality or PatientID
# recur in every image of a series, and pydicom's converter costs some ten microseconds a value. Only
# immutable plain values are shared between datasets.
_CONVERTED: dict = {}
_CONVERTED_MAX = 4096
_CONVERTED_BYTES = 256  # short values only: the cache never holds a long text
_SHAREABLE = frozenset({str, int, float})


def _encodings_for(ds, vr: str):
    """The character sets pydicom decodes a text value with (Dataset.__getitem__)."""
    if vr not in _CHARSET_VRS:
        return None
    return ds.original_character_set or ds._character_set


_CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})


def is_empty(vr: str, value) -> bool:
    """DataElement.is_empty for a value (VM 0)."""
    if vr == "SQ":
        return False
    if value is None:
        return True
    if isinstance(value, str | bytes | PersonName):
        return not value
    return isinstance(value, list | tuple | MultiValue) and not value


def raw(tag, vr: str, data: bytes, *, implicit: bool, little_endian: bool = True) -> RawDataElement:
    """An undecoded element holding `data`, as the reader would have made it."""
    return RawDataElement(tag, vr, len(data), data, 0, implicit, little_endian)


def canonical(element: RawDataElement, vr: str, codecs: list[str]) -> bool:
    """Whether decoding this raw element and writing it again gives back its bytes."""
    data = element.value
    if type(data) is not bytes:
        return False
    if vr == "UI":  # decoding strips the padding and each UID, and splits at backslashes; writing joins, pads
        text = "\\".join(string_values(data, vr))
        return data == (text + "\0" if len(text) % 2 else text).encode(_LATIN_1)
    return encode_value(vr, convert_value(vr, element), codecs) == data


_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)


class DeferredValueChanged(ValueError):
    """A deferred value's file no longer holds what was read from it (changed or cut short meanwhile)."""


class FileRange:
    """A deferred value still in the file its dataset was read from (the ingest reader's `read_file`, or
    `dcmread(path, defer_size=...)`): copied from there when the stored file is written, so an import never
    holds its images' pixel data in memory. The element header is checked again when the value is read, as
    pydicom checks it when it reads a deferred value."""

    __slots__ = ("header", "header_start", "length", "mtime", "path", "reserved", "value_start")

    def __init__(self, path: str, value_start: int, length: int, header: bytes, reserved: slice | None, mtime: float):
        self.path, self.value_start, self.length, self.mtime = path, value_start, length, mtime
        self.header_start = value_start - (len(header) + (2 if reserved else 0))
        self.header, self.reserved = header, reserved  # reserved: the header's two bytes that may hold anything

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"FileRange({self.path!r}, {self.value_start}, {self.length})"

    def read_into(self, view: memoryview) -> None:
        """Fill `view` (`length` bytes) with the value, having checked the file was not modified since it was
        read and the element header is still there."""
        with open(self.path, "rb", buffering=0) as file:
            if os.fstat(file.fileno()).st_mtime != self.mtime:
                raise _changed(self.path)
            file.seek(self.header_start)
            found = file.read(self.value_start - self.header_start)
            if self.reserved is not None:
                found = found[: self.reserved.start] + found[self.reserved.stop :]
            filled = 0
            while found == self.header and filled < self.length:
                count = file.readinto(view[filled : self.length])
                if not count:
                    break
                filled += count
        if found != self.header or filled != self.length:
            raise _changed(self.path)

    def read(self) -> bytes:
        buffer = bytearray(self.length)
        self.read_into(memoryview(buffer))
        return bytes(buffer)


def _changed(path: str) -> DeferredValueChanged:
    name = os.path.basename(path)
    return DeferredValueChanged(f"{name}: the file changed while it was being imported; send it again.")


def deferred_value(ds, element) -> memoryview | FileRange | None:
    """The value of a deferred element (a raw element with value None, as dcmread's `defer_size` and the
    ingest reader leave large values) without reading it into the dataset: a view of the bytes the dataset
    was read from (no copy), or, for a dataset read from a file by name, a FileRange to copy it from there.
    None where this is not plain (cut short, not little endian, the element header not where the element
    says): pydicom then reads it, or refuses it, itself. DeferredValueChanged where the file was modified
    since it was read: what was checked is no longer what would be stored."""
    if type(element) is not RawDataElement or element.value is not None or element.is_little_endian is not True:
        return None
    header = _element_header(element)
    if header is None:
        return None
    expected, reserved = header
    start, length = element.value_tell, element.length
    buffer = getattr(ds, "buffer", None)
    if buffer is None:
        return _file_range(ds, start, length, expected, reserved)
    if type(buffer) is not io.BytesIO or buffer.closed:
        return None
    data = buffer.getvalue()  # the bytes the buffer was made from, not a copy (BytesIO shares them)
    size = len(expected) + (2 if reserved else 0)
    if start + length > len(data) or start < size:
        return None
    found = data[start - size : start]
    if reserved is not None:
        found = found[: reserved.start] + found[reserved.stop :]
    return memoryview(data)[start : start + length] if found == expected else None


def _element_header(element) -> tuple[bytes, slice | None] | None:
    """The header the element was read with, as read_deferred_data_element checks it: tag, VR (explicit) and
    length; for a long explicit VR, also where its two reserved bytes lie (they may hold anything)."""
    tag, vr, length = int(element.tag), element.VR, element.length
    if length == _UNDEFINED:
        return None
    if element.is_implicit_VR:
        return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, length), None
    if vr in _LONG_VRS:
        return struct.pack("<HH2sL", tag >> 16, tag & 0xFFFF, vr.encode(), length), slice(6, 8)
    if isinstance(vr, str) and len(vr) == 2:
        return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length), None
    return None


def _file_range(ds, start: int, length: int, header: bytes, reserved: slice | None) -> FileRange | None:
    """Where the file is still as read: the same modification time as noted when it was read, long enough."""
    path, timestamp = getattr(ds, "filename", None), getattr(ds, "timestamp", None)
    if not isinstance(path, str) or getattr(ds, "fileobj_type", None) is not open or timestamp is None:
        return None
    try:
        status = os.stat(path)
    except OSError as exc:
        raise _changed(path) from exc
    if status.st_mtime != timestamp:
        raise _changed(path)
    if start < len(header) + (2 if reserved else 0) or start + length > status.st_size:
        return None  # cut short when it was read: pydicom reads what there is (the checks name it truncated)
    if not length:
        return memoryview(b"")  # an empty value of unknown VR (implicit), which pydicom leaves as None
    return FileRange(path, start, length, header, reserved, timestamp)


def uid_value(element: RawDataElement):
    """A raw UI element's value as pydicom decodes it, with str in place of UID: for comparisons, without
    pydicom's UID validation."""
    values = string_values(element.value, "UI")
    if len(values) > 1:
        return values
    return values[0] if values else ""


def encode_value(vr: str, value, codecs: list[str]) -> bytes | None:
    """The value bytes pydicom's writer produces for a decoded value; None where this does not mirror it."""
    try:
        return _encode(vr, value, codecs)
    except (UnicodeError, TypeError, ValueError, OverflowError, AttributeError, struct.error):
        return None  # pydicom raises (or copes) in its own way


def _encode(vr: str, value, codecs: list[str]) -> bytes | None:
    if value is None:
        return b""
    if vr in _STRING_PADDING:  # write_string, write_UI; write_DA, _DT, _TM for values held as text
        if not isinstance(value, str):
            if not isinstance(value, list | MultiValue) or not all(isinstance(v, str) for v in value):
                return None
            value = "\\".join(value)
        return (value + _STRING_PADDING[vr] if len(value) % 2 else value).encode(_LATIN_1)
    if vr in _TEXT_VRS:  # write_text, for character sets encode_string encodes plainly
        if codecs[0] not in PLAIN_CODECS:
            return None
        if isinstance(value, str):
            encoded = value.encode(codecs[0])
        elif isinstance(value, list | MultiValue) and all(isinstance(v, str) for v in value):
            encoded = b"\\".join(v.encode(codecs[0]) for v in value)
        else:
            return None
        return encoded + b" " if len(encoded) % 2 else encoded
    if vr in _NUMBER_STRING_VRS:  # write_number_string: the string as read where there is one
        if isinstance(value, list | MultiValue):
            text = "\\".join(_number_string(v) for v in value)
        elif isinstance(value, str | int | float):
            text = _number_string(value)
        else:
            return None
        return (text + " " if len(text) % 2 else text).encode(_LATIN_1)
    if vr == "PN" and isinstance(value, PersonName):  # write_PN for a single name
        encoded = value.encode(codecs)
        return encoded + b" " if len(encoded) % 2 else encoded
    if vr in _NUMBER_FORMATS and type(value) in (int, float):  # write_numbers for a single number
        return struct.pack(_NUMBER_FORMATS[vr], value)
    if vr in _BYTES_VRS and type(value) is bytes:  # write_OBvalue, write_OWvalue
        return value + b"\x00" if len(value) % 2 else value
    return None


def _number_string(value) -> str:
    return value.original_string if hasattr(value, "original_string") else str(value)


__all__ = [
    "PLAIN_CODECS",
    "DeferredValueChanged",
    "FileRange",
    "canonical",
    "decoded_vr",
    "default_decoding",
    "deferred_value",
    "encode_value",
    "is_empty",
    "peek",
    "raw",
    "string_values",
    "uid_text",
    "uid_value",
    "value_of",
]
