"""SUVbw (body-weight standardised uptake value) of a PET instance, following the QIBA FDG-PET/CT profile.

QIBA's vendor-neutral pseudo-code, restricted to what it can do without vendor private attributes:
- Units must be BQML, CorrectedImage must contain ATTN and DECY, DecayCorrection must be START (pixels are
  decay-corrected to the scan start, so the injected dose is decayed to that same moment);
- scan start = SeriesDate/SeriesTime, unless the series time is after the acquisition time (a series
  re-created by post-processing), in which case the earliest AcquisitionDate/Time of the series is used;
- injection = RadiopharmaceuticalStartDateTime, or RadiopharmaceuticalStartTime on the SeriesDate (the day
  before when that would put the injection after the scan: an injection before midnight);
- SUVbw = (Bq/ml after the modality LUT) × PatientWeight [g] / (RadionuclideTotalDose × 2^(−Δt / T½)).

Anything missing or inconsistent raises SUVError naming the attribute: a wrong SUV is worse than none,
because it silently moves a threshold-based contour. Vendor-specific units (e.g. Philips CNTS with a private
SUV scale) are refused rather than guessed.
"""

import datetime as dt
from collections.abc import Sequence

from pydicom.valuerep import DA, DT, TM

MAX_PLAUSIBLE_WEIGHT_KG = 350.0  # heavier values are usually grams or pounds typed into a kilogram field


class SUVError(ValueError):
    """SUVbw cannot be computed for an instance; the message names the attribute and what to do."""


def _where(ds) -> str:
    return f"PET instance {ds.get('InstanceNumber', '?')} ({ds.get('SOPInstanceUID', 'no SOPInstanceUID')})"


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _positive(container, keyword: str, unit: str, where: str) -> float:
    value = container.get(keyword)
    if value is None or str(value).strip() == "":
        raise SUVError(f"{where}: {keyword} is missing; SUVbw needs it ({unit}).")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise SUVError(f"{where}: {keyword} {value!r} is not a number ({unit}).") from exc
    if not number > 0:
        raise SUVError(f"{where}: {keyword} is {number:g} {unit}; it must be positive.")
    return number


def _date(ds, keyword: str, where: str) -> dt.date:
    text = _text(ds, keyword)
    if not text:
        raise SUVError(f"{where}: {keyword} is missing; SUVbw needs the scan date.")
    try:
        return DA(text)
    except ValueError as exc:
        raise SUVError(f"{where}: {keyword} {text!r} is not a DICOM date (YYYYMMDD).") from exc


def _time(ds, keyword: str, where: str) -> dt.time:
    text = _text(ds, keyword)
    if not text:
        raise SUVError(f"{where}: {keyword} is missing; SUVbw needs it to decay the dose.")
    try:
        return TM(text)
    except ValueError as exc:
        raise SUVError(f"{where}: {keyword} {text!r} is not a DICOM time (HHMMSS.FFFFFF).") from exc


def _naive(value: dt.datetime) -> dt.datetime:
    # Series and acquisition date/times carry no UTC offset; an injection DT's offset is assumed to be the
    # same local clock (as on every scanner QIBA surveyed), so it is dropped rather than converted.
    return value.replace(tzinfo=None)


def acquisition_datetime(ds) -> dt.datetime | None:
    """This instance's AcquisitionDate/Time (the date defaulting to SeriesDate), or None when absent."""
    where = _where(ds)
    if not _text(ds, "AcquisitionTime"):
        return None
    day = _date(ds, "AcquisitionDate" if _text(ds, "AcquisitionDate") else "SeriesDate", where)
    return dt.datetime.combine(day, _time(ds, "AcquisitionTime", where))


def earliest_acquisition_datetime(datasets: Sequence) -> dt.datetime | None:
    """The earliest acquisition date/time of a series (QIBA's fallback scan start), or None if none has one."""
    times = [t for t in (acquisition_datetime(ds) for ds in datasets) if t is not None]
    return min(times) if times else None


def scan_start(ds, earliest_acquisition: dt.datetime | None = None) -> dt.datetime:
    """The moment the pixels are decay-corrected to: SeriesDate/Time, checked against the acquisition time."""
    where = _where(ds)
    series = dt.datetime.combine(_date(ds, "SeriesDate", where), _time(ds, "SeriesTime", where))
    reference = earliest_acquisition or acquisition_datetime(ds)
    if reference is None or series <= reference:
        return series
    if earliest_acquisition is not None:
        return earliest_acquisition
    raise SUVError(
        f"{where}: SeriesDate/SeriesTime {series:%Y-%m-%d %H:%M:%S} is after AcquisitionDate/AcquisitionTime "
        f"{reference:%Y-%m-%d %H:%M:%S} (a post-processed series); pass the earliest acquisition time of the whole "
        "series as earliest_acquisition (load_suv_volume does)."
    )


def injection_start(ds, scan: dt.datetime) -> dt.datetime:
    """Injection date/time from the (first) RadiopharmaceuticalInformationSequence item."""
    where = _where(ds)
    items = ds.get("RadiopharmaceuticalInformationSequence")
    if not items:
        raise SUVError(f"{where}: RadiopharmaceuticalInformationSequence is missing; SUVbw needs the dose and time.")
    item = items[0]
    start_datetime = _text(item, "RadiopharmaceuticalStartDateTime")
    if start_datetime:
        try:
            injected = _naive(DT(start_datetime))
        except ValueError as exc:
            raise SUVError(f"{where}: RadiopharmaceuticalStartDateTime {start_datetime!r} is not a DICOM DT.") from exc
        if injected > scan:
            raise SUVError(
                f"{where}: RadiopharmaceuticalStartDateTime {injected:%Y-%m-%d %H:%M:%S} is after the scan start "
                f"{scan:%Y-%m-%d %H:%M:%S}; correct the injection or series date/time."
            )
        return injected
    if not _text(item, "RadiopharmaceuticalStartTime"):
        raise SUVError(
            f"{where}: neither RadiopharmaceuticalStartDateTime nor RadiopharmaceuticalStartTime is present; "
            "SUVbw needs the injection time."
        )
    injected = dt.datetime.combine(scan.date(), _time(item, "RadiopharmaceuticalStartTime", where))
    if injected > scan:  # injected before midnight, scanned after
        injected -= dt.timedelta(days=1)
    return injected


def suv_bw_factor(ds, earliest_acquisition: dt.datetime | None = None) -> float:
    """Factor (g/Bq) turning this instance's modality-LUT output (Bq/ml) into SUVbw (g/ml).

    Multiply `stored × RescaleSlope + RescaleIntercept` by it (see suv_bw_stored_scale for stored values).
    """
    where = _where(ds)
    units = _text(ds, "Units")
    if units != "BQML":
        raise SUVError(
            f"{where}: Units is {units or 'missing'!r}, not BQML; only activity-concentration images (Bq/ml) can "
            "be converted to SUVbw. Send the scanner's attenuation- and decay-corrected series."
        )
    corrected = ds.get("CorrectedImage")
    corrections = {str(v).strip().upper() for v in ([corrected] if isinstance(corrected, str) else corrected or [])}
    missing = sorted({"ATTN", "DECY"} - corrections)
    if missing:
        raise SUVError(
            f"{where}: CorrectedImage lacks {' and '.join(missing)} (has {sorted(corrections) or 'nothing'}); "
            "SUVbw needs an attenuation- and decay-corrected series."
        )
    decay_correction = _text(ds, "DecayCorrection")
    if decay_correction != "START":
        raise SUVError(
            f"{where}: DecayCorrection is {decay_correction or 'missing'!r}, not START; the QIBA SUVbw calculation "
            "assumes pixels decay-corrected to the scan start."
        )
    weight_kg = _positive(ds, "PatientWeight", "kg", where)
    if weight_kg > MAX_PLAUSIBLE_WEIGHT_KG:
        raise SUVError(
            f"{where}: PatientWeight {weight_kg:g} kg is implausible (grams or pounds?); correct it at the site."
        )
    scan = scan_start(ds, earliest_acquisition)
    injected = injection_start(ds, scan)
    item = ds.RadiopharmaceuticalInformationSequence[0]
    dose_bq = _positive(item, "RadionuclideTotalDose", "Bq", where)
    half_life_s = _positive(item, "RadionuclideHalfLife", "s", where)
    decay_seconds = (scan - injected).total_seconds()
    decayed_dose_bq = dose_bq * 2.0 ** (-decay_seconds / half_life_s)
    return weight_kg * 1000.0 / decayed_dose_bq


suv_bw_scale = suv_bw_factor  # QIBA's "SUVbwScaleFactor": applied to rescaled (Bq/ml) values


def suv_bw_stored_scale(ds, earliest_acquisition: dt.datetime | None = None) -> float:
    """Factor turning this instance's *stored* pixel values into SUVbw: RescaleSlope × suv_bw_factor.

    Valid because the PET Image module requires RescaleIntercept 0; a non-zero intercept is refused.
    """
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if intercept != 0:
        raise SUVError(
            f"{_where(ds)}: RescaleIntercept is {intercept:g}; PET images must have 0. Apply the modality LUT "
            "yourself and use suv_bw_factor."
        )
    slope = float(ds.get("RescaleSlope", 1) or 1)
    return slope * suv_bw_factor(ds, earliest_acquisition)
