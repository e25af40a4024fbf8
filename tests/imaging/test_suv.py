"""SUVbw per the QIBA pseudo-code, checked against a calculation written out independently in the test."""

import datetime as dt
import warnings

import pytest
from pydicom.dataset import Dataset

from imaging.dicom.deid import deidentify
from imaging.dicom.suv import (
    SUVError,
    earliest_acquisition_datetime,
    suv_bw_factor,
    suv_bw_scale,
    suv_bw_stored_scale,
)
from tests.imaging.synthetic_pet import (
    F18_HALF_LIFE_S,
    INJECTED_DOSE_BQ,
    PATIENT_WEIGHT_KG,
    pet_series,
)

SCAN = dt.datetime(2024, 3, 12, 10, 7, 30)
INJECTION = dt.datetime(2024, 3, 12, 9, 5, 0)


def by_hand(injected=INJECTION, scan=SCAN, weight_kg=PATIENT_WEIGHT_KG, dose_bq=INJECTED_DOSE_BQ):
    """weight [g] / (dose × 2^(−Δt/T½)), Δt in seconds: the QIBA formula, independent of suv.py."""
    elapsed_s = (scan - injected).total_seconds()
    return weight_kg * 1000.0 / (dose_bq * 2.0 ** (-elapsed_s / F18_HALF_LIFE_S))


@pytest.fixture
def pet():
    return pet_series()[0]


def test_factor_matches_an_independent_calculation(pet):
    assert suv_bw_factor(pet) == pytest.approx(by_hand(), rel=1e-12)
    assert suv_bw_scale(pet) == suv_bw_factor(pet)
    # 62.5 min after injection of 370 MBq of F-18 into 72.5 kg: about 2.9e-4 g/Bq
    assert suv_bw_factor(pet) == pytest.approx(2.9076e-4, rel=1e-4)


def test_stored_scale_includes_the_per_slice_rescale_slope():
    for ds in pet_series(slopes=[0.5, 2.0, 7.25]):
        assert suv_bw_stored_scale(ds) == pytest.approx(float(ds.RescaleSlope) * by_hand(), rel=1e-12)


def test_a_uniform_activity_of_one_dose_per_body_weight_is_suv_one(pet):
    decayed = INJECTED_DOSE_BQ * 2.0 ** (-(SCAN - INJECTION).total_seconds() / F18_HALF_LIFE_S)
    bq_per_ml = decayed / (PATIENT_WEIGHT_KG * 1000.0)  # the dose spread evenly over the body (1 g/ml)
    assert bq_per_ml * suv_bw_factor(pet) == pytest.approx(1.0, rel=1e-12)


def test_injection_time_without_date_uses_the_series_date():
    ds = pet_series(injection_datetime=None, injection_time="090500")[0]
    assert suv_bw_factor(ds) == pytest.approx(by_hand(), rel=1e-12)


def test_injection_before_midnight_and_scan_after_it():
    ds = pet_series(injection_datetime=None, injection_time="233000", series_time="003000")[0]
    injected, scan = dt.datetime(2024, 3, 11, 23, 30), dt.datetime(2024, 3, 12, 0, 30)
    assert suv_bw_factor(ds) == pytest.approx(by_hand(injected, scan), rel=1e-12)


def test_injection_datetime_with_utc_offset_is_read_on_the_same_clock():
    ds = pet_series(injection_datetime="20240312090500.000000+0100")[0]
    assert suv_bw_factor(ds) == pytest.approx(by_hand(), rel=1e-12)


def test_series_time_after_acquisition_needs_the_series_earliest_acquisition():
    # A post-processed series: SeriesTime is when it was re-created, after the bed positions were acquired.
    datasets = pet_series(series_time="113000", acquisition_times=["100800", "100730", "101200"])
    with pytest.raises(SUVError, match=r"SeriesDate/SeriesTime .* after AcquisitionDate/AcquisitionTime"):
        suv_bw_factor(datasets[0])
    earliest = earliest_acquisition_datetime(datasets)
    assert earliest == SCAN
    for ds in datasets:
        assert suv_bw_factor(ds, earliest_acquisition=earliest) == pytest.approx(by_hand(), rel=1e-12)


def test_series_time_before_acquisition_is_the_scan_start():
    datasets = pet_series(acquisition_times=["100800", "101000", "101200"])
    assert suv_bw_factor(datasets[2], earliest_acquisition=earliest_acquisition_datetime(datasets)) == pytest.approx(
        by_hand(), rel=1e-12
    )


def test_suv_is_unchanged_by_deidentification(pet):
    result = deidentify(pet, pseudonym="CT-HN-0042", salt=bytes(32) + b"salt", date_shift_days=-400)
    assert result.dataset.SeriesDate != pet.SeriesDate
    assert suv_bw_factor(result.dataset) == pytest.approx(suv_bw_factor(pet), rel=1e-12)


def _radiopharmaceutical(ds: Dataset) -> Dataset:
    return ds.RadiopharmaceuticalInformationSequence[0]


def _set(keyword, value):
    return lambda ds: setattr(ds, keyword, value)


def _delete(keyword):
    return lambda ds: delattr(ds, keyword)


def _set_in_item(keyword, value):
    return lambda ds: setattr(_radiopharmaceutical(ds), keyword, value)


def _delete_in_item(keyword):
    return lambda ds: delattr(_radiopharmaceutical(ds), keyword)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("Units", "CNTS"), r"Units is 'CNTS', not BQML"),
        (_set("Units", "GML"), r"Units is 'GML', not BQML"),
        (_delete("Units"), r"Units is 'missing', not BQML"),
        (_set("CorrectedImage", ["ATTN", "SCAT"]), r"CorrectedImage lacks DECY"),
        (_set("CorrectedImage", "DECY"), r"CorrectedImage lacks ATTN"),
        (_delete("CorrectedImage"), r"CorrectedImage lacks ATTN and DECY"),
        (_set("DecayCorrection", "ADMIN"), r"DecayCorrection is 'ADMIN', not START"),
        (_delete("DecayCorrection"), r"DecayCorrection is 'missing', not START"),
        (_delete("PatientWeight"), r"PatientWeight is missing"),
        (_set("PatientWeight", 0), r"PatientWeight is 0 kg; it must be positive"),
        (_set("PatientWeight", 72500), r"PatientWeight 72500 kg is implausible"),
        (_delete("SeriesDate"), r"SeriesDate is missing"),
        (_delete("SeriesTime"), r"SeriesTime is missing"),
        (_delete("RadiopharmaceuticalInformationSequence"), r"RadiopharmaceuticalInformationSequence is missing"),
        (_delete_in_item("RadionuclideTotalDose"), r"RadionuclideTotalDose is missing"),
        (_set_in_item("RadionuclideTotalDose", -5), r"RadionuclideTotalDose is -5 Bq; it must be positive"),
        (_delete_in_item("RadionuclideHalfLife"), r"RadionuclideHalfLife is missing"),
        (_delete_in_item("RadiopharmaceuticalStartDateTime"), r"neither RadiopharmaceuticalStartDateTime nor"),
        (_set_in_item("RadiopharmaceuticalStartDateTime", "20240312120000"), r"StartDateTime .* is after the scan"),
    ],
)
def test_errors_name_the_attribute(pet, change, message):
    change(pet)
    with pytest.raises(SUVError, match=message):
        suv_bw_factor(pet)


def test_malformed_values_are_refused(pet):
    broken = pet_series()[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom rightly warns that this is not a DA
        broken.SeriesDate = "2024-03-12"
    with pytest.raises(SUVError, match="SeriesDate '2024-03-12' is not a DICOM date"):
        suv_bw_factor(broken)
    _radiopharmaceutical(pet).RadionuclideHalfLife = None
    with pytest.raises(SUVError, match="RadionuclideHalfLife is missing"):
        suv_bw_factor(pet)


def test_stored_scale_refuses_a_non_zero_intercept(pet):
    pet.RescaleIntercept = -10
    with pytest.raises(SUVError, match="RescaleIntercept is -10"):
        suv_bw_stored_scale(pet)
