"""De-identify one DICOM dataset: PS3.15 Annex E Basic Profile, Retain Patient Characteristics, Modified Dates.

Why these options: SUVbw needs the patient's weight (and readers of head-and-neck images use sex and age),
and follow-up needs the real intervals between scans, so dates are shifted by one per-patient offset (the
same for every series of that patient) and times of day are kept. Everything else follows the action table
in annex_e.py, applied at every nesting level. UIDs are replaced by salted `2.25.` UIDs (uids.py), so
references between the CT, PET, RT Structure Sets and SEGs of a patient still resolve after de-identification.

Stricter than the table in three places, on purpose: free text the options mark C ("clean") is removed
rather than edited; a D (dummy) on a sequence or a binary value removes it; values that cannot be parsed as a
date are emptied, since they cannot be shifted. Images with burned-in annotation are refused: the pixels
themselves may show a name, and nothing here cleans pixels.

Speed: kept values are left undecoded, and for datasets read from a file the values that change (UIDs,
dates, the pseudonym, the method record) are stored as the bytes writing them would give, in raw elements
(elements.py), instead of through pydicom's per-element machinery; reading them gives exactly the values
the decoded path sets (the tests compare the two paths, byte for byte).
"""

import copy
import datetime as dt
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass, field

from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_sequence
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import PersonName

from imaging.dicom.annex_e import ACTIONS, REMOVED_REPEATING_GROUPS
from imaging.dicom.elements import (
    PLAIN_CODECS,
    canonical,
    decoded_vr,
    default_decoding,
    encode_value,
    raw,
    string_values,
)
from imaging.dicom.uids import UIDError, check_salt, is_class_uid, is_well_known_uid, remap_uid

DATE_SHIFT_RANGE = (-730, -30)  # days; never zero, so a shifted date is never mistaken for a real one
DUMMY_TEXT = "DEIDENTIFIED"
PSEUDONYM_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # fits PN and LO, no PN component separators
PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020

# PS3.16 CID 7050 codes for what was done (DCM coding scheme).
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113108", "Retain Patient Characteristics Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
DEIDENTIFICATION_METHOD = (
    "PS3.15 Annex E Basic Application Confidentiality Profile",
    "Retain Patient Characteristics Option",
    "Retain Longitudinal Temporal Information Modified Dates Option",
)

# File meta attributes that name the sending system or carry private data (not in Table E.1-1).
_FILE_META_REMOVED = (0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102)

_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})
_NUMERIC_BINARY_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"})
_DUMMY_BY_VR = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "IS": "0", "DS": "0", "AS": "000Y"}

_DT_PATTERN = re.compile(r"(\d{4})(\d{2})?(\d{2})?((?:\d{2}){0,3}(?:\.\d{1,6})?)([+-]\d{4})?")


class DeidError(ValueError):
    """A dataset cannot be de-identified safely; the message names the attribute and what to do."""


@dataclass(frozen=True)
class DeidResult:
    dataset: Dataset
    uid_map: dict[str, str]  # original UID → pseudonymous UID, for every UID replaced in this dataset


@dataclass
class _Context:
    pseudonym: str
    salt: bytes
    days: int
    memo: dict | None = None  # (salt, days, tag, VR, action, implicit, bytes) → (raw element, UIDs it replaced)
    uid_map: dict[str, str] = field(default_factory=dict)

    def uid(self, value) -> str:
        original = _stripped_uid(value)
        if not original or is_well_known_uid(original):
            return original
        if original not in self.uid_map:
            self.uid_map[original] = remap_uid(original, self.salt)
        return self.uid_map[original]


def date_shift_for(pseudonym: str, salt: bytes) -> int:
    """The patient's date offset in days, in DATE_SHIFT_RANGE: the same for every series of one pseudonym."""
    try:
        check_salt(salt)
    except UIDError as exc:
        raise DeidError(str(exc)) from exc
    low, high = DATE_SHIFT_RANGE
    digest = hmac.new(bytes(salt), b"contourtrial date shift\x00" + pseudonym.encode("utf-8"), hashlib.sha256)
    return low + int.from_bytes(digest.digest()[:8], "big") % (high - low + 1)


def deidentify(
    ds: Dataset,
    *,
    pseudonym: str,
    salt: bytes,
    date_shift_days: int,
    copy_input: bool = True,
    memo: dict | None = None,
) -> DeidResult:
    """Return a de-identified deep copy of `ds` (the input is left untouched) and the UIDs it replaced.

    With copy_input=False the dataset itself is de-identified in place (no deep copy of the pixel data and
    every element): for a pipeline that no longer needs the original. A `memo` dict shared by the calls for
    one series (same pseudonym, salt and shift) lets values that recur in every image (study and series
    UIDs, dates) be rewritten once; it holds original values, so keep it no longer than the import.
    """
    try:
        check_salt(salt)
    except UIDError as exc:
        raise DeidError(str(exc)) from exc
    if not isinstance(pseudonym, str) or not PSEUDONYM_PATTERN.fullmatch(pseudonym):
        raise DeidError(
            f"Pseudonym {pseudonym!r} cannot be used as PatientName/PatientID: use 1-64 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit."
        )
    if isinstance(date_shift_days, bool) or not isinstance(date_shift_days, int) or date_shift_days == 0:
        raise DeidError(
            f"date_shift_days must be a non-zero whole number of days (date_shift_for gives one), not "
            f"{date_shift_days!r}: the Modified Dates option promises that no real date is kept."
        )
    if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
        raise DeidError(
            f"BurnedInAnnotation is YES in {ds.get('Modality', '?')} instance {ds.get('SOPInstanceUID', '?')}: "
            "the pixels may show the patient's name or ID. Send a series without burned-in annotation "
            "(or have it cleaned at the site)."
        )
    out = copy.deepcopy(ds) if copy_input else ds
    if getattr(out, "preamble", None):
        out.preamble = b"\x00" * 128  # a file's preamble is free for other formats' headers: never pass it on
    context = _Context(pseudonym=pseudonym, salt=bytes(salt), days=date_shift_days, memo=memo)
    _clean(out, context, top=True)
    codecs = _plain_codecs(out)
    for tag, keyword in ((PATIENT_NAME, "PatientName"), (PATIENT_ID, "PatientID")):
        if not _stored_text(out, tag, pseudonym, codecs):
            setattr(out, keyword, pseudonym)
    _clean_file_meta(out, context)
    _record_method(out, codecs)
    return DeidResult(dataset=out, uid_map=dict(context.uid_map))


def _removed_outright(tag: int) -> bool:
    group = tag >> 16
    # private attributes; group lengths (retired, recomputed on write); curves and overlays
    return bool(group & 1) or not tag & 0xFFFF or group in _REMOVED_GROUPS


_REMOVED_GROUPS = frozenset(group for low, high in REMOVED_REPEATING_GROUPS for group in range(low, high + 1))


def _clean(ds: Dataset, context: _Context, top: bool = False) -> None:
    elements = ds._dict
    implicit = _bytes_level(ds)
    for tag, element in list(elements.items()):  # Dataset iteration decodes every element; this does not
        step, action, vr = _step(int(tag), element.VR)
        if step is _KEEP:
            continue
        if step is _DELETE:
            del ds[tag]
        elif step is _PSEUDONYM:
            if not top:  # deidentify sets them at the top level, after cleaning
                ds[tag].value = context.pseudonym
        elif step is _REWRITE and implicit is not None and _rewritten(ds, tag, element, action, vr, context, implicit):
            continue
        else:
            _apply(ds, tag, action, context)


_KEEP, _DELETE, _PSEUDONYM, _REWRITE, _APPLY = "keep", "delete", "pseudonym", "rewrite", "apply"


@functools.lru_cache(maxsize=16384)
def _step(tag: int, stored_vr: str | None) -> tuple[str, str, str | None]:
    """What _clean does with an element, from its tag and the VR it was read with (not its value)."""
    if _removed_outright(tag):
        return _DELETE, "X", stored_vr
    if tag in (PATIENT_NAME, PATIENT_ID):
        return _PSEUDONYM, "K", stored_vr
    action = ACTIONS.get(tag, "K")
    if action == "X":
        return _DELETE, action, stored_vr  # no need to decode what goes
    vr = _dictionary_vr(tag) if stored_vr in (None, "UN") else stored_vr
    if action == "K" and vr not in _KEPT_BUT_REWRITTEN_VRS:
        return _KEEP, action, vr  # kept as it is: left undecoded (pixel data above all), which is also fastest
    if vr is None or stored_vr == "UN":
        return _APPLY, action, vr  # decoded to find out the VR
    if (action == "K" and vr == "UI" and is_class_uid(tag)) or (action == "C" and vr == "TM"):
        return _KEEP, action, vr  # kept unchanged (class UIDs; times of day)
    if action == "C" and vr not in ("DA", "DT"):
        return _DELETE, action, vr  # free text, which C removes
    return _REWRITE, action, vr


def _bytes_level(ds: Dataset) -> bool | None:
    """Whether the dataset is implicit VR, where its values can be replaced by their encoded bytes
    (elements.py): read from a file, little endian, pydicom decoding the stock way. None where they cannot."""
    implicit, little_endian = ds.original_encoding
    return implicit if implicit is not None and little_endian is True and default_decoding() else None


def _rewritten(ds: Dataset, tag, element, action: str, vr: str, context: _Context, implicit: bool) -> bool:
    """What _apply does to UIDs, dates and emptied values, without decoding the element: the new value is
    stored as the bytes writing it would give, which read back as the value _apply would set."""
    raw_element = type(element) is RawDataElement
    if raw_element and type(element.value) is not bytes:
        return False  # a deferred read
    if action == "Z":
        if vr not in _TEXT_LIKE_VRS or not raw_element:
            return False
        ds._dict[tag] = DataElement(tag, vr, None)  # what decoding and emptying it leaves
        return True
    key = (context.salt, context.days, int(tag), vr, action, implicit, element.value) if raw_element else None
    known = context.memo.get(key) if key is not None and context.memo is not None else None
    if known is not None:
        ds._dict[tag], replaced = known  # raw elements are immutable: datasets can share them
        context.uid_map.update(replaced)
        return True
    replaced = {}
    if vr == "UI" and (action in ("U", "D") or (action == "K" and not is_class_uid(tag))):
        originals = _current_values(element, vr)
        values = [context.uid(v) for v in originals]
        replaced = {o: context.uid_map[o] for o in map(_stripped_uid, originals) if o in context.uid_map}
    elif vr in ("DA", "DT") and action in ("K", "C"):
        shift = shift_date if vr == "DA" else shift_datetime
        values = [shift(v, context.days) for v in _current_values(element, vr)]
        if None in values:
            return False
    else:
        return False
    if not values or not _store(ds, tag, vr, values[0] if len(values) == 1 else values, _DEFAULT_CODECS, implicit):
        return False
    if key is not None and context.memo is not None:
        context.memo[key] = (ds._dict[tag], replaced)
    return True


def _stripped_uid(value) -> str:
    return str(value).strip().rstrip("\x00").strip()


def _current_values(element, vr: str) -> list[str]:
    """_values of the element, decoded or not (UI, DA and DT values are plain text, see string_values)."""
    return string_values(element.value, vr) if type(element) is RawDataElement else _values(element)


def _plain_codecs(ds: Dataset) -> list[str] | None:
    """The codecs a top-level dataset's text is written in, where they encode plainly; else None."""
    if _bytes_level(ds) is None:
        return None
    codecs = convert_encodings(ds.get("SpecificCharacterSet", default_encoding) or [default_encoding])
    return codecs if codecs[0] in PLAIN_CODECS else None


def _stored_text(ds: Dataset, tag: int, text: str, codecs: list[str] | None) -> bool:
    """Set a top-level text value (the pseudonym) as bytes; False where the caller must set it itself."""
    element = ds._dict.get(tag)
    vr = decoded_vr(element, tag) if element is not None else dictionary_VR(tag)
    if codecs is None or vr not in ("PN", "LO", "SH"):
        return False
    element = _text_element(int(tag), vr, text, tuple(codecs), ds.original_encoding[0])
    if element is None:
        return False
    ds._dict[element.tag] = element
    return True


@functools.lru_cache(maxsize=256)
def _text_element(tag: int, vr: str, text: str, codecs: tuple[str, ...], implicit: bool) -> RawDataElement | None:
    """The raw element _store would make for the pseudonym: the same for every image of an import, so made
    once (raw elements are immutable: datasets can share them)."""
    data = encode_value(vr, PersonName(text) if vr == "PN" else text, list(codecs))
    return None if data is None else raw(Tag(tag), vr, data, implicit=implicit)


def _store(ds: Dataset, tag: int, vr: str, value, codecs: list[str], implicit: bool) -> bool:
    data = encode_value(vr, value, codecs)
    if data is None:
        return False
    tag = tag if isinstance(tag, BaseTag) else Tag(tag)
    ds._dict[tag] = raw(tag, vr, data, implicit=implicit)
    return True


@functools.lru_cache(maxsize=8192)
def _dictionary_vr(tag: int) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


_DEFAULT_CODECS = [default_encoding]
_TEXT_LIKE_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI"})
_TEXT_LIKE_VRS |= frozenset({"UR", "UT"})


# Kept attributes that still change: sequences (their items are cleaned), dates (shifted), UIDs (remapped),
# and values of unknown VR, which are decoded to find out.
_KEPT_BUT_REWRITTEN_VRS = frozenset({"SQ", "DA", "DT", "UI", "UN", None})


def _apply(ds: Dataset, tag: BaseTag, action: str, context: _Context) -> None:
    element = ds[tag]
    vr = element.VR
    if action == "X":
        del ds[tag]
    elif action == "Z":
        element.value = [] if vr == "SQ" else None
    elif action == "D":
        _dummy(ds, tag, context)
    elif action == "C":
        if vr in ("DA", "DT"):
            _shift(element, context.days)
        elif vr != "TM":  # times of day are kept; free text cannot be cleaned reliably, so it goes
            del ds[tag]
    elif action == "U":
        if vr == "UI":
            _remap(element, context)
        elif vr == "SQ":
            _clean_items(element, context)
        else:
            del ds[tag]
    else:  # K, and every public attribute the table does not list
        if vr == "SQ":
            _clean_items(element, context)
        elif vr in ("DA", "DT"):
            _shift(element, context.days)
        elif vr == "UI" and not is_class_uid(tag):
            _remap(element, context)


def _clean_items(element, context: _Context) -> None:
    for item in element.value or []:
        _clean(item, context)


def _dummy(ds: Dataset, tag: BaseTag, context: _Context) -> None:
    element = ds[tag]
    vr = element.VR
    if vr == "UI":
        _remap(element, context)
    elif vr in _TEXT_VRS:
        element.value = DUMMY_TEXT
    elif vr in _DUMMY_BY_VR:
        element.value = _DUMMY_BY_VR[vr]
    elif vr in _NUMERIC_BINARY_VRS:
        element.value = 0
    else:  # sequences and binary values: no meaningful dummy exists
        del ds[tag]


def _values(element) -> list[str]:
    return _values_of(element.value)


def _values_of(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        value = [value]
    return [v.decode("ascii", "replace") if isinstance(v, bytes) else str(v) for v in value]


def _remap(element, context: _Context) -> None:
    values = [context.uid(v) for v in _values(element)]
    element.value = values[0] if len(values) == 1 else (values or None)


def _shift(element, days: int) -> None:
    shift = shift_date if element.VR == "DA" else shift_datetime
    shifted = [shift(v, days) for v in _values(element)]
    if any(v is None for v in shifted):
        element.value = None  # unparseable: cannot be shifted, so it cannot be kept
    else:
        element.value = shifted[0] if len(shifted) == 1 else (shifted or None)


def _format_date(day: dt.date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def shift_date(value: str, days: int) -> str | None:
    """Shift a DA value (or a DA range `A-B`) by `days`; None when it is not a date."""
    text = value.strip()
    if not text:
        return ""
    if "-" in text:
        parts = [shift_date(part, days) if part else "" for part in text.split("-", 1)]
        return None if None in parts else "-".join(parts)
    if re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", text):  # ACR-NEMA style, still seen in old archives
        text = text.replace(".", "")
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return _format_date(dt.date(int(text[:4]), int(text[4:6]), int(text[6:])) + dt.timedelta(days=days))
    except (ValueError, OverflowError):
        return None


def shift_datetime(value: str, days: int) -> str | None:
    """Shift the date part of a DT value by `days`, keeping its precision, time of day and UTC offset."""
    text = value.strip()
    if not text:
        return ""
    match = _DT_PATTERN.fullmatch(text)
    if not match:
        return None
    year, month, day, rest, offset = match.groups()
    try:
        shifted = dt.date(int(year), int(month or 1), int(day or 1)) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    date_text = _format_date(shifted)[: 4 + (2 if month else 0) + (2 if day else 0)]
    return f"{date_text}{rest or ''}{offset or ''}"


def _clean_file_meta(ds: Dataset, context: _Context) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for tag in _FILE_META_REMOVED:
        if tag in meta:
            del meta[tag]
    if "SOPInstanceUID" in ds:
        if not _copied_raw(ds, meta, 0x00080018, 0x00020003):
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    elif "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = context.uid(meta.MediaStorageSOPInstanceUID)


def _copied_raw(ds: Dataset, meta, tag: int, meta_tag: int) -> bool:
    """Copy a UI element into the file meta as bytes where they are exactly what writing its value gives."""
    element, existing = ds._dict.get(tag), meta._dict.get(meta_tag)
    if _bytes_level(ds) is None or type(element) is not RawDataElement or decoded_vr(element, tag) != "UI":
        return False
    if (existing is not None and decoded_vr(existing, meta_tag) != "UI") or not canonical(element, "UI", []):
        return False
    meta._dict[Tag(meta_tag)] = raw(Tag(meta_tag), "UI", element.value, implicit=False)
    return True


_RECORD = (
    (0x00120062, "CS", "YES"),  # PatientIdentityRemoved
    (0x00120063, "LO", list(DEIDENTIFICATION_METHOD)),  # DeidentificationMethod
    (0x00280303, "CS", "MODIFIED"),  # LongitudinalTemporalInformationModified
)
_METHOD_CODE_SEQUENCE = 0x00120064
_RECORD_TAGS = (*(tag for tag, _, _ in _RECORD), _METHOD_CODE_SEQUENCE)


def _record_method(ds: Dataset, codecs: list[str] | None) -> None:
    if codecs is not None and not any(tag in ds._dict for tag in _RECORD_TAGS):
        record = _method_record(tuple(codecs), ds.original_encoding[0])
        if record is not None:
            ds._dict.update(record)
            return
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = list(DEIDENTIFICATION_METHOD)
    ds.DeidentificationMethodCodeSequence = _method_codes()
    ds.LongitudinalTemporalInformationModified = "MODIFIED"


@functools.lru_cache(maxsize=64)
def _method_record(codecs: tuple[str, ...], implicit: bool) -> tuple[tuple[BaseTag, RawDataElement], ...] | None:
    """The record of what was done, as the raw elements _store would make: the same for every image, so made
    once. None where a value does not encode plainly (the caller then sets them through pydicom)."""
    record = []
    for tag, vr, value in _RECORD:
        data = encode_value(vr, value, list(codecs))
        if data is None:
            return None
        record.append((Tag(tag), raw(Tag(tag), vr, data, implicit=implicit)))
    sequence = Tag(_METHOD_CODE_SEQUENCE)
    record.append((sequence, raw(sequence, "SQ", _method_code_items(implicit), implicit=implicit)))
    return tuple(record)


def _method_codes() -> list[Dataset]:
    items = []
    for value, meaning in METHOD_CODES:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    return items


@functools.cache
def _method_code_items(implicit: bool) -> bytes:
    """The encoded items of DeidentificationMethodCodeSequence, as pydicom writes the items above."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, implicit
    write_sequence(buffer, DataElement(_METHOD_CODE_SEQUENCE, "SQ", _method_codes()), [default_encoding])
    return buffer.getvalue()
