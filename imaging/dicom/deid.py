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
"""

import copy
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from imaging.dicom.annex_e import ACTIONS, REMOVED_REPEATING_GROUPS
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
    uid_map: dict[str, str] = field(default_factory=dict)

    def uid(self, value) -> str:
        original = str(value).strip().rstrip("\x00").strip()
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


def deidentify(ds: Dataset, *, pseudonym: str, salt: bytes, date_shift_days: int) -> DeidResult:
    """Return a de-identified deep copy of `ds` (the input is left untouched) and the UIDs it replaced."""
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
    out = copy.deepcopy(ds)
    if getattr(out, "preamble", None):
        out.preamble = b"\x00" * 128  # a file's preamble is free for other formats' headers: never pass it on
    context = _Context(pseudonym=pseudonym, salt=bytes(salt), days=date_shift_days)
    _clean(out, context)
    out.PatientName = pseudonym
    out.PatientID = pseudonym
    _clean_file_meta(out, context)
    _record_method(out)
    return DeidResult(dataset=out, uid_map=dict(context.uid_map))


def _removed_outright(tag: BaseTag) -> bool:
    if tag.is_private or tag.element == 0:  # private attributes; group lengths (retired, recomputed on write)
        return True
    return any(low <= tag.group <= high for low, high in REMOVED_REPEATING_GROUPS)


def _clean(ds: Dataset, context: _Context) -> None:
    for tag in list(ds.keys()):  # Dataset iteration yields elements (and decodes them); keys do not
        if _removed_outright(tag):
            del ds[tag]
            continue
        if tag in (PATIENT_NAME, PATIENT_ID):
            ds[tag].value = context.pseudonym
            continue
        _apply(ds, tag, ACTIONS.get(int(tag), "K"), context)


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
    value = element.value
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
        return _format_date(dt.datetime.strptime(text, "%Y%m%d").date() + dt.timedelta(days=days))
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
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    elif "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = context.uid(meta.MediaStorageSOPInstanceUID)


def _record_method(ds: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = list(DEIDENTIFICATION_METHOD)
    items = []
    for value, meaning in METHOD_CODES:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
