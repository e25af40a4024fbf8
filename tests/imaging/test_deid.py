"""De-identification: PS3.15 Basic Profile + Retain Patient Characteristics + Modified Dates, on synthetic data."""

import copy
import datetime as dt
import re
import shutil
import subprocess
import warnings

import pytest
from pydicom import dcmread
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.uid import UID

from imaging.dicom.annex_e import ACTIONS, BASIC_PROFILE, KEYWORDS, RETAIN_MODIFIED_DATES, SINGLE_CODES
from imaging.dicom.deid import (
    DATE_SHIFT_RANGE,
    DeidError,
    date_shift_for,
    deidentify,
    shift_date,
    shift_datetime,
)
from imaging.dicom.uids import UIDError, is_class_uid, is_well_known_uid, remap_uid
from tests.imaging.synthetic_pet import (
    BIRTH_DATE,
    CT_IMAGE_STORAGE,
    IDENTIFYING,
    SERIES_TIME,
    STUDY_COMPONENT_CLASS,
    STUDY_DATE,
    STUDY_TIME,
    ct_series,
    pet_series,
    rt_structure_set,
)

SALT = bytes(range(32))
PSEUDONYM = "CT-HN-0042"
SHIFT = -123


def _deid(ds, **overrides):
    arguments = {"pseudonym": PSEUDONYM, "salt": SALT, "date_shift_days": SHIFT, **overrides}
    return deidentify(ds, **arguments)


@pytest.fixture
def originals():
    ct = ct_series()
    return {"ct": ct, "pet": pet_series(), "rtstruct": rt_structure_set(ct)}


@pytest.fixture
def results(originals):
    return {
        "ct": [_deid(ds) for ds in originals["ct"]],
        "pet": [_deid(ds) for ds in originals["pet"]],
        "rtstruct": _deid(originals["rtstruct"]),
    }


def _all_datasets(originals):
    return [*originals["ct"], *originals["pet"], originals["rtstruct"]]


def _all_results(results):
    return [*results["ct"], *results["pet"], results["rtstruct"]]


def _original_uids(ds: Dataset) -> set[str]:
    uids = {str(e.value) for e in ds.iterall() if e.VR == "UI" and e.value and not is_class_uid(e.tag)}
    return {u for u in uids if not is_well_known_uid(u)}


def _strings(ds: Dataset) -> list[str]:
    """Every value of every element, nested ones and the file meta included, as text."""
    elements = [*ds.iterall(), *getattr(ds, "file_meta", Dataset()).iterall()]
    return [str(e.value) for e in elements if e.VR != "SQ" and e.tag != 0x7FE00010]


def _date(text: str) -> dt.date:
    return dt.datetime.strptime(text, "%Y%m%d").date()


def _shifted(text: str, days: int = SHIFT) -> str:
    return (_date(text) + dt.timedelta(days=days)).strftime("%Y%m%d")


# The action table


def test_action_table_covers_the_basic_profile_and_resolves_every_code():
    assert len(BASIC_PROFILE) >= 600
    assert set(ACTIONS.values()) <= SINGLE_CODES
    for tag, keyword in KEYWORDS.items():
        known = keyword_for_tag(tag)
        assert not known or known == keyword, f"{tag:08X}: table says {keyword}, pydicom {known}"
    assert set(RETAIN_MODIFIED_DATES) <= set(BASIC_PROFILE)


@pytest.mark.parametrize(
    ("keyword", "action"),
    [
        ("PatientName", "Z"),
        ("PatientBirthDate", "Z"),
        ("PatientAddress", "X"),
        ("OtherPatientIDsSequence", "X"),
        ("AccessionNumber", "Z"),
        ("InstitutionName", "X"),
        ("ReferringPhysicianName", "Z"),
        ("OperatorsName", "X"),
        ("StationName", "X"),
        ("DeviceSerialNumber", "X"),
        ("RequestAttributesSequence", "X"),
        ("ImageComments", "X"),
        ("AdditionalPatientHistory", "X"),
        ("StudyDescription", "X"),
        ("ReferencedImageSequence", "U"),
        ("FrameOfReferenceUID", "U"),
        ("SOPInstanceUID", "U"),
        ("PatientWeight", "K"),  # Retain Patient Characteristics
        ("PatientSex", "K"),
        ("PatientAge", "K"),
        ("PatientSize", "K"),
        ("StudyDate", "C"),  # Retain Longitudinal Temporal Information, Modified Dates
        ("SeriesTime", "C"),
        ("RadiopharmaceuticalStartDateTime", "C"),
        ("PatientBirthTime", "X"),
    ],
)
def test_action_of(keyword, action):
    from pydicom.datadict import tag_for_keyword

    assert ACTIONS[tag_for_keyword(keyword)] == action


# UIDs


def test_remap_uid_is_deterministic_salted_and_valid():
    original = "1.2.826.0.1.3680043.8.498.123456789"
    first = remap_uid(original, SALT)
    assert first == remap_uid(original, SALT)
    assert first == remap_uid(original + "\x00", SALT)  # UI padding does not change the pseudonym
    assert first != remap_uid(original, bytes(reversed(SALT)))
    assert first != remap_uid(original + "0", SALT)
    assert first.startswith("2.25.") and len(first) <= 64
    assert UID(first).is_valid
    assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", first)


def test_remap_uid_refuses_a_short_salt_or_an_empty_uid():
    with pytest.raises(UIDError, match="salt"):
        remap_uid("1.2.3", b"short")
    with pytest.raises(UIDError, match="empty"):
        remap_uid("  ", SALT)


def test_class_uids_are_recognised_by_keyword_or_tag():
    assert is_class_uid("SOPClassUID")
    assert is_class_uid(0x00081150)  # ReferencedSOPClassUID
    assert is_class_uid((0x0002, 0x0010))  # TransferSyntaxUID
    assert is_class_uid("CodingSchemeUID")
    assert not is_class_uid("SOPInstanceUID")
    assert not is_class_uid(0x00200052)
    assert is_well_known_uid("1.2.840.10008.1.2.1")
    assert not is_well_known_uid("1.2.826.0.1.3680043.8.498.1")


# Date shifts


def test_date_shift_is_per_patient_deterministic_and_in_range():
    shifts = [date_shift_for(f"CT-HN-{n:04d}", SALT) for n in range(200)]
    low, high = DATE_SHIFT_RANGE
    assert all(low <= s <= high for s in shifts)
    assert len(set(shifts)) > 100
    assert date_shift_for("CT-HN-0001", SALT) == shifts[1]
    assert [date_shift_for(f"CT-HN-{n:04d}", bytes(reversed(SALT))) for n in range(20)] != shifts[:20]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240312", "20231110"),
        ("20240312-20240401", "20231110-20231130"),
        ("2024.03.12", "20231110"),
        ("", ""),
        ("2024-03-12", None),
        ("20241312", None),
        ("yesterday", None),
    ],
)
def test_shift_date(value, expected):
    assert shift_date(value, SHIFT) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240312090500", "20231110090500"),
        ("20240312090500.123456+0130", "20231110090500.123456+0130"),
        ("20240312-0500", "20231110-0500"),
        ("", ""),
        ("202403", "202310"),
        ("2024", "2023"),
        ("2024-03-12T09:05", None),
    ],
)
def test_shift_datetime_keeps_time_precision_and_offset(value, expected):
    assert shift_datetime(value, SHIFT) == expected


# The de-identified objects


def test_no_identifying_value_survives_anywhere(originals, results):
    original_uids = set().union(*(_original_uids(ds) for ds in _all_datasets(originals)))
    for result in _all_results(results):
        text = "\n".join(_strings(result.dataset))
        for label, value in IDENTIFYING.items():
            assert value.lower() not in text.lower(), f"{label} survived: {value!r}"
        assert BIRTH_DATE not in text
        assert STUDY_DATE not in text
        for uid in original_uids:
            assert uid not in text


def test_private_overlay_and_removed_attributes_are_gone_at_every_level(results):
    for result in _all_results(results):
        ds = result.dataset
        assert not [e.tag for e in ds.iterall() if e.tag.is_private]
        assert not [e.tag for e in ds.iterall() if 0x6000 <= e.tag.group <= 0x60FF]
        for keyword in (
            "OtherPatientIDsSequence",
            "OtherPatientIDs",
            "IssuerOfPatientID",
            "PatientAddress",
            "PatientTelephoneNumbers",
            "PatientBirthName",
            "PatientMotherBirthName",
            "AdditionalPatientHistory",
            "PatientComments",
            "MedicalAlerts",
            "Occupation",
            "InstitutionName",
            "InstitutionAddress",
            "InstitutionalDepartmentName",
            "StationName",
            "DeviceSerialNumber",
            "OperatorsName",
            "PerformingPhysicianName",
            "NameOfPhysiciansReadingStudy",
            "PhysiciansOfRecord",
            "StudyDescription",
            "SeriesDescription",
            "ProtocolName",
            "ImageComments",
            "AdmittingDiagnosesDescription",
            "PerformedProcedureStepID",
            "PerformedProcedureStepDescription",
            "RequestAttributesSequence",
            "ReferencedPerformedProcedureStepSequence",
        ):
            assert keyword not in ds, keyword
        for keyword in ("AccessionNumber", "StudyID", "ReferringPhysicianName", "PatientBirthDate"):
            assert ds[keyword].value in (None, ""), keyword  # Type 2: kept, empty
        assert len(ds.ReferencedStudySequence) == 0
        assert "SourceApplicationEntityTitle" not in ds.file_meta


def test_curves_group_length_and_preamble_are_dropped():
    ds = ct_series()[0]
    ds.add_new(0x50000005, "US", 1)  # CurveDimensions (retired curve module)
    ds.add_new(0x50002500, "LO", "curve of DOE")  # CurveLabel
    ds.add_new(0x00080000, "UL", 1234)  # a group length
    ds.preamble = b"TIFF header with DOE^JANE".ljust(128, b"\0")
    result = _deid(ds).dataset
    assert not [e.tag for e in result.iterall() if 0x5000 <= e.tag.group <= 0x50FF or e.tag.element == 0]
    assert result.preamble == b"\0" * 128


def test_pseudonym_replaces_name_and_id(results):
    for result in _all_results(results):
        assert str(result.dataset.PatientName) == PSEUDONYM
        assert result.dataset.PatientID == PSEUDONYM


def test_patient_characteristics_are_kept(originals, results):
    for original, result in zip(originals["pet"], results["pet"], strict=True):
        ds = result.dataset
        assert ds.PatientSex == original.PatientSex == "F"
        assert ds.PatientAge == original.PatientAge == "065Y"  # age at the study: unchanged by a uniform shift
        assert float(ds.PatientWeight) == float(original.PatientWeight)
        assert float(ds.PatientSize) == float(original.PatientSize)
        assert ds.SmokingStatus == "YES"


def test_dates_shift_by_exactly_the_offset_and_times_are_kept(originals, results):
    pet, pet_result = originals["pet"][0], results["pet"][0].dataset
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "PerformedProcedureStepStartDate"):
        assert (_date(pet_result[keyword].value) - _date(pet[keyword].value)).days == SHIFT, keyword
    for keyword in ("StudyTime", "SeriesTime", "AcquisitionTime", "PerformedProcedureStepStartTime"):
        assert pet_result[keyword].value == pet[keyword].value, keyword
    assert pet_result.StudyTime == STUDY_TIME and pet_result.SeriesTime == SERIES_TIME
    injection = pet_result.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime
    assert injection == _shifted("20240312") + "090500"
    assert pet_result.StudyUpdateDateTime == _shifted("20240313") + "081500.000000+0100"  # DT not in the table
    ct_result = results["ct"][0].dataset
    assert ct_result.ContentDate == _shifted(STUDY_DATE) and ct_result.ContentTime == SERIES_TIME
    rtstruct = results["rtstruct"].dataset
    assert rtstruct.StructureSetDate == _shifted(STUDY_DATE) and rtstruct.StructureSetTime == SERIES_TIME
    assert rtstruct.ReviewDate == _shifted(STUDY_DATE)
    assert pet_result.LongitudinalTemporalInformationModified == "MODIFIED"


def test_unparseable_dates_are_emptied():
    ds = ct_series()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom rightly warns that this is not a DA
        ds.AcquisitionDate = "12/03/2024"
    assert _deid(ds).dataset.AcquisitionDate in (None, "")


def test_uid_references_stay_consistent_across_series(originals, results):
    ct = [r.dataset for r in results["ct"]]
    pet = [r.dataset for r in results["pet"]]
    rtstruct = results["rtstruct"].dataset
    assert len({ds.StudyInstanceUID for ds in [*ct, *pet, rtstruct]}) == 1
    assert len({ds.FrameOfReferenceUID for ds in [*ct, *pet]}) == 1
    assert len({ds.SeriesInstanceUID for ds in ct}) == 1
    assert len({ds.SOPInstanceUID for ds in ct}) == len(ct)
    frame = rtstruct.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == ct[0].FrameOfReferenceUID
    study = frame.RTReferencedStudySequence[0]
    assert study.ReferencedSOPInstanceUID == ct[0].StudyInstanceUID
    series = study.RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ct[0].SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence] == [ds.SOPInstanceUID for ds in ct]
    contour_image = rtstruct.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0]
    assert contour_image.ReferencedSOPInstanceUID == ct[0].SOPInstanceUID
    assert rtstruct.StructureSetROISequence[0].ReferencedFrameOfReferenceUID == ct[0].FrameOfReferenceUID
    for original, result in zip(originals["ct"], results["ct"], strict=True):
        assert result.uid_map[original.SOPInstanceUID] == result.dataset.SOPInstanceUID
        assert result.dataset.file_meta.MediaStorageSOPInstanceUID == result.dataset.SOPInstanceUID
        assert result.uid_map[original.FrameOfReferenceUID] == result.dataset.FrameOfReferenceUID


def test_class_and_transfer_syntax_uids_are_unchanged(originals, results):
    for original, result in zip(_all_datasets(originals), _all_results(results), strict=True):
        ds = result.dataset
        assert ds.SOPClassUID == original.SOPClassUID
        assert ds.file_meta.MediaStorageSOPClassUID == original.file_meta.MediaStorageSOPClassUID
        assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert ds.file_meta.ImplementationClassUID == original.file_meta.ImplementationClassUID
    series = results["rtstruct"].dataset.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    assert series.ReferencedSOPClassUID == STUDY_COMPONENT_CLASS
    assert series.RTReferencedSeriesSequence[0].ContourImageSequence[0].ReferencedSOPClassUID == CT_IMAGE_STORAGE


def test_well_known_frame_of_reference_is_kept():
    ds = ct_series()[0]
    ds.FrameOfReferenceUID = "1.2.840.10008.1.4.1.1"  # a registered (Talairach) frame of reference
    assert _deid(ds).dataset.FrameOfReferenceUID == "1.2.840.10008.1.4.1.1"


def test_method_is_recorded(results):
    ds = results["ct"][0].dataset
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethod
    codes = {(item.CodeValue, item.CodingSchemeDesignator) for item in ds.DeidentificationMethodCodeSequence}
    assert codes == {("113100", "DCM"), ("113108", "DCM"), ("113107", "DCM")}


def test_input_is_not_modified(originals):
    ds = originals["pet"][0]
    before = copy.deepcopy(ds)
    _deid(ds)
    assert ds == before
    assert ds.file_meta == before.file_meta
    assert str(ds.PatientName) == IDENTIFYING["PatientName"]


def test_burned_in_annotation_is_refused():
    ds = ct_series()[0]
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(DeidError, match="BurnedInAnnotation"):
        _deid(ds)


@pytest.mark.parametrize("pseudonym", ["", "Doe^Jane", "x" * 65, "-leading", "with space", None])
def test_unusable_pseudonyms_are_refused(pseudonym):
    with pytest.raises(DeidError, match="Pseudonym"):
        _deid(ct_series()[0], pseudonym=pseudonym)


def test_short_salt_and_non_integer_shift_are_refused():
    with pytest.raises(DeidError, match="salt"):
        _deid(ct_series()[0], salt=b"0123")
    with pytest.raises(DeidError, match="date_shift_days"):
        _deid(ct_series()[0], date_shift_days=1.5)
    with pytest.raises(DeidError, match="non-zero"):
        _deid(ct_series()[0], date_shift_days=0)
    with pytest.raises(DeidError, match="salt"):
        date_shift_for(PSEUDONYM, b"")


# Written files


def _write_all(results, directory) -> list:
    paths = []
    for n, result in enumerate(_all_results(results)):
        path = directory / f"deid-{n}.dcm"
        result.dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def test_written_files_contain_no_identifying_bytes(originals, results, tmp_path):
    original_uids = set().union(*(_original_uids(ds) for ds in _all_datasets(originals)))
    for path in _write_all(results, tmp_path):
        raw = path.read_bytes()
        for label, value in IDENTIFYING.items():
            assert value.encode().lower() not in raw.lower(), f"{label} in {path.name}"
        for uid in original_uids:
            assert uid.encode() not in raw
        reread = dcmread(path)
        assert str(reread.PatientName) == PSEUDONYM


@pytest.mark.dicom_tools
def test_dcmdump_of_written_files_shows_no_identifying_strings(originals, results, tmp_path):
    dcmdump = shutil.which("dcmdump")
    if dcmdump is None:
        pytest.skip("dcmdump (dcmtk) is not installed")
    original_uids = set().union(*(_original_uids(ds) for ds in _all_datasets(originals)))
    for path in _write_all(results, tmp_path):
        dump = subprocess.run([dcmdump, "+L", "-M", str(path)], capture_output=True, text=True, check=True).stdout
        assert "(0010,0010) PN [" + PSEUDONYM + "]" in dump
        assert "(0012,0062) CS [YES]" in dump
        for label, value in IDENTIFYING.items():
            assert value.lower() not in dump.lower(), f"{label} in dcmdump of {path.name}"
        for uid in original_uids:
            assert uid not in dump
        assert not re.search(r"^\s*\((?:[0-9a-f]{3}[13579bdf]),", dump, re.IGNORECASE | re.MULTILINE)
