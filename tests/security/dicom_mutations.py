"""Hypothesis strategies that break a valid DICOM file the ways senders and attackers do.

Each mutation is a small dataclass (so a failing example prints as something a person can read and replay)
applied to the bytes of an Explicit VR Little Endian Part 10 file: byte flips, truncation, inserted or deleted
bytes, a wrong length or VR on a chosen element (nested ones included), a random value in a chosen element
with its length kept consistent (so the file still parses and the value reaches de-identification), and a
deeply nested sequence inserted into the dataset.
"""

import struct
from dataclasses import dataclass

from hypothesis import strategies as st

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
       b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN",
       b"UR", b"US", b"UT", b"UV"]  # fmt: skip
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_PREFIX_END = 132  # preamble and "DICM"
# Values that have broken parsers of DICOM strings and numbers before: overflow, NaN, separators, encodings.
TRICKY_TEXT = [b"", b"\\", b"\\\\\\", b"1e309", b"-1e309", b"nan", b"NaN\\inf", b"-0", b"0x10", b"1" * 70,
               b"99999999999999999999", b"-2147483649", b"  ", b"\x00" * 8, b"2.25.", b"1..2", b"\xff\xfe\xfd",
               "Ünïcödé^名前".encode(), b"ISO 2022 IR 87\\ISO_IR 192", b"ISO_IR 999", b"\x1b$B", b"20240230",
               b"99999999", b"240000.000000", b"19000101-20991231", b"999Y", b"\r\n", b"%s%n"]  # fmt: skip


@dataclass(frozen=True)
class Element:
    """Where one element of a file lies: its header, length field and value."""

    start: int
    tag: int
    vr: bytes
    length_at: int
    length_size: int
    value_at: int
    length: int
    depth: int


def elements(data: bytes) -> list[Element]:
    """Every element of an Explicit VR Little Endian file, file meta and nested items included."""
    found: list[Element] = []
    _walk(data, _PREFIX_END, len(data), 0, found)
    return found


def _walk(data: bytes, position: int, end: int, depth: int, found: list) -> int:
    while position + 8 <= end:
        group, number = struct.unpack_from("<HH", data, position)
        tag = group << 16 | number
        if tag in (_ITEM_END, _SEQUENCE_END):
            return position + 8
        vr = data[position + 4 : position + 6]
        if vr in _LONG_VRS:
            length_at, length_size, value_at = position + 8, 4, position + 12
        else:
            length_at, length_size, value_at = position + 6, 2, position + 8
        (length,) = struct.unpack_from("<L" if length_size == 4 else "<H", data, length_at)
        found.append(Element(position, tag, vr, length_at, length_size, value_at, length, depth))
        if vr == b"SQ":
            position = _items(data, value_at, end if length == _UNDEFINED else value_at + length, depth, found)
            if length != _UNDEFINED:
                position = value_at + length
        else:
            position = value_at + length
    return position


def _items(data: bytes, position: int, end: int, depth: int, found: list) -> int:
    while position + 8 <= end:
        tag_group, tag_number, length = struct.unpack_from("<HHL", data, position)
        tag = tag_group << 16 | tag_number
        if tag == _SEQUENCE_END:
            return position + 8
        item_end = end if length == _UNDEFINED else position + 8 + length
        after = _walk(data, position + 8, item_end, depth + 1, found)
        position = after if length == _UNDEFINED else item_end
    return position


class Mutation:
    def apply(self, data: bytes) -> bytes:
        raise NotImplementedError


@dataclass(frozen=True)
class Flip(Mutation):
    changes: tuple[tuple[int, int], ...]  # (offset, xor mask)

    def apply(self, data: bytes) -> bytes:
        out = bytearray(data)
        for offset, mask in self.changes:
            out[offset % len(out)] ^= mask
        return bytes(out)


@dataclass(frozen=True)
class Truncate(Mutation):
    keep: int

    def apply(self, data: bytes) -> bytes:
        return data[: self.keep]


@dataclass(frozen=True)
class Insert(Mutation):
    offset: int
    data: bytes

    def apply(self, data: bytes) -> bytes:
        return data[: self.offset] + self.data + data[self.offset :]


@dataclass(frozen=True)
class Delete(Mutation):
    offset: int
    count: int

    def apply(self, data: bytes) -> bytes:
        return data[: self.offset] + data[self.offset + self.count :]


@dataclass(frozen=True)
class Length(Mutation):
    """A wrong length field on one element: the reader's offsets go astray from there."""

    element: Element
    length: int

    def apply(self, data: bytes) -> bytes:
        size = self.element.length_size
        value = self.length & (0xFFFF if size == 2 else 0xFFFFFFFF)
        field = struct.pack("<H" if size == 2 else "<L", value)
        return data[: self.element.length_at] + field + data[self.element.length_at + size :]


@dataclass(frozen=True)
class WrongVR(Mutation):
    element: Element
    vr: bytes

    def apply(self, data: bytes) -> bytes:
        at = self.element.start + 4
        return data[:at] + self.vr + data[at + 2 :]


@dataclass(frozen=True)
class Value(Mutation):
    """A new value for one element, its length field kept right, so the file parses and the value is used."""

    element: Element
    value: bytes

    def apply(self, data: bytes) -> bytes:
        e = self.element
        if e.vr == b"SQ" or (e.length_size == 2 and len(self.value) > 0xFFFF):
            return data
        field = struct.pack("<H" if e.length_size == 2 else "<L", len(self.value))
        head = data[: e.length_at] + field + data[e.length_at + e.length_size : e.value_at]
        return head + self.value + data[e.value_at + e.length :]


@dataclass(frozen=True)
class Nest(Mutation):
    """A sequence nested `depth` items deep inserted before top-level element `before` (undefined lengths)."""

    before: Element
    tag: int
    depth: int
    leaf: bytes  # an element inside the innermost item

    def apply(self, data: bytes) -> bytes:
        header = struct.pack("<HH", self.tag >> 16, self.tag & 0xFFFF) + b"SQ\0\0" + struct.pack("<L", _UNDEFINED)
        item = struct.pack("<HHL", 0xFFFE, 0xE000, _UNDEFINED)
        item_end = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
        sequence_end = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
        nested = (header + item) * self.depth + self.leaf + (item_end + sequence_end) * self.depth
        return data[: self.before.start] + nested + data[self.before.start :]


SEQUENCE_TAGS = [0x00081140, 0x00400275, 0x00089215, 0x00291010, 0x0009100A]  # 2 standard, 1 other, 2 private


@st.composite
def mutations(draw, data: bytes) -> Mutation:
    """One mutation of `data` (a valid Explicit VR Little Endian file)."""
    found = elements(data)
    top = [e for e in found if e.depth == 0 and e.tag >> 16 != 2]
    size = len(data)
    offset = st.integers(0, size - 1)
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "length", "vr", "value", "nest"]))
    if kind == "flip":
        return Flip(tuple(draw(st.lists(st.tuples(offset, st.integers(1, 255)), min_size=1, max_size=8))))
    if kind == "truncate":
        return Truncate(draw(offset))
    if kind == "insert":
        return Insert(draw(offset), draw(st.binary(min_size=1, max_size=64)))
    if kind == "delete":
        return Delete(draw(offset), draw(st.integers(1, 64)))
    element = draw(st.sampled_from(found))
    if kind == "length":
        near = st.integers(max(0, element.length - 8), element.length + 8)
        extremes = st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, _UNDEFINED, size, size * 2])
        return Length(element, draw(st.one_of(near, extremes, st.integers(0, _UNDEFINED))))
    if kind == "vr":
        return WrongVR(element, draw(st.one_of(st.sampled_from(VRS), st.binary(min_size=2, max_size=2))))
    if kind == "value":
        value = draw(
            st.one_of(
                st.sampled_from(TRICKY_TEXT),
                st.binary(max_size=80),
                st.integers(0, 2**64 - 1).map(lambda n: n.to_bytes(8, "little")),
                st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
            )
        )
        return Value(element, value)  # fmt: skip
    leaf = draw(st.sampled_from([b"", b"\x08\x00\x18\x00UI\x04\x001.2\0", b"\x10\x00\x10\x00PN\x04\x00A^B "]))
    depth = draw(st.one_of(st.integers(1, 8), st.sampled_from([64, 200, 999, 1000, 1001, 3000])))
    return Nest(draw(st.sampled_from(top)), draw(st.sampled_from(SEQUENCE_TAGS)), depth, leaf)
