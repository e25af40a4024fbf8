"""Synthetic CT, PET and RT Structure Set datasets for imaging tests, full of invented identifying data.

No real patient data: every name, number, address and date below is made up. `IDENTIFYING` lists the strings
that must not survive de-identification anywhere (attributes, nested sequences, private blocks, file bytes).
"""

import datetime as dt

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
STUDY_COMPONENT_CLASS = "1.2.840.10008.3.1.2.3.1"  # the class RT Structure Sets use to reference a study

PATIENT_NAME = "DOE^JANE^QUINCY"
PATIENT_ID = "MRN0099137"
BIRTH_DATE = "19580704"
STUDY_DATE = "20240312"
STUDY_TIME = "093012"
SERIES_TIME = "100730"
INJECTION_DATETIME = "20240312090500"
F18_HALF_LIFE_S = 6586.2
INJECTED_DOSE_BQ = 370.0e6
PATIENT_WEIGHT_KG = 72.5

IDENTIFYING = {
    "PatientName": PATIENT_NAME,
    "PatientID": PATIENT_ID,
    "PatientBirthDate": BIRTH_DATE,
    "PatientBirthName": "ROE^JANE",
    "PatientMotherBirthName": "ROE^MARGARET",
    "PatientAddress": "12 Fakestreet, Springfield",
    "PatientTelephoneNumbers": "+44-555-0134",
    "OtherPatientIDs": "NHS9990001112",
    "IssuerOfPatientID": "ELSEWHERE-PAS",
    "AdditionalPatientHistory": "smoker since teens, prior left neck biopsy",
    "PatientComments": "prefers to be called Janey",
    "MedicalAlerts": "penicillin alert",
    "Occupation": "lightkeeper",
    "AccessionNumber": "ACC55512",
    "StudyID": "STU7781",
    "StudyDescription": "PETCT HEAD NECK for Doe",
    "SeriesDescription": "CT 2.5mm Doe",
    "InstitutionName": "St Elsewhere Hospital",
    "InstitutionAddress": "1 Infirmary Road, Elsewhere",
    "InstitutionalDepartmentName": "Nuclear Medicine Elsewhere",
    "ReferringPhysicianName": "SMITH^JOHN",
    "PerformingPhysicianName": "JONES^ANNA",
    "NameOfPhysiciansReadingStudy": "BROWN^READER",
    "PhysiciansOfRecord": "GREEN^RECORD",
    "OperatorsName": "OPERATOR^OLIVE",
    "RequestingPhysician": "WHITE^REQUESTER",
    "StationName": "CTROOM7",
    "DeviceSerialNumber": "SN4471XQ",
    "ProtocolName": "HN Elsewhere protocol",
    "ImageComments": "patient moved, see Jane",
    "AdmittingDiagnosesDescription": "oropharyngeal mass",
    "PerformedProcedureStepID": "PPS8812",
    "PerformedProcedureStepDescription": "PETCT performed for Doe",
    "RequestedProcedureID": "REQ4410",
    "ScheduledProcedureStepID": "SPS3321",
    "RequestedProcedureDescription": "PET for Jane Doe",
    "PrivateTopLevel": "PRIVATE-MRN0099137-TOP",
    "PrivateNested": "PRIVATE-NESTED-DOE",
    "OverlayDescription": "overlay note Doe",
    "StructureSetLabel": "JD plan",
    "StructureSetName": "Doe RT structures",
    "ROIName": "GTVp Doe",
    "ROIObservationLabel": "Doe observation",
    "ReviewerName": "REVIEWER^RITA",
}


def fake_uid(name: str) -> str:
    """A deterministic, clearly fake original UID (so tests can look for it in output files)."""
    return generate_uid(prefix="1.2.826.0.1.3680043.8.498.", entropy_srcs=["contourtrial-test", name])


def _meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    meta.SourceApplicationEntityTitle = "ELSEWHERE_CT"
    return meta


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _patient_and_study(ds: Dataset, modality: str) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.IssuerOfPatientID = IDENTIFYING["IssuerOfPatientID"]
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientBirthName = IDENTIFYING["PatientBirthName"]
    ds.PatientMotherBirthName = IDENTIFYING["PatientMotherBirthName"]
    ds.PatientAddress = IDENTIFYING["PatientAddress"]
    ds.PatientTelephoneNumbers = IDENTIFYING["PatientTelephoneNumbers"]
    ds.OtherPatientIDs = IDENTIFYING["OtherPatientIDs"]
    other = Dataset()
    other.PatientID = IDENTIFYING["OtherPatientIDs"]
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = [other]
    ds.AdditionalPatientHistory = IDENTIFYING["AdditionalPatientHistory"]
    ds.PatientComments = IDENTIFYING["PatientComments"]
    ds.MedicalAlerts = IDENTIFYING["MedicalAlerts"]
    ds.Occupation = IDENTIFYING["Occupation"]
    ds.PatientSex = "F"
    ds.PatientAge = "065Y"
    ds.PatientWeight = PATIENT_WEIGHT_KG
    ds.PatientSize = 1.68
    ds.SmokingStatus = "YES"
    ds.StudyInstanceUID = fake_uid("study")
    ds.StudyDate = STUDY_DATE
    ds.StudyTime = STUDY_TIME
    ds.AccessionNumber = IDENTIFYING["AccessionNumber"]
    ds.StudyID = IDENTIFYING["StudyID"]
    ds.StudyDescription = IDENTIFYING["StudyDescription"]
    ds.ReferringPhysicianName = IDENTIFYING["ReferringPhysicianName"]
    ds.NameOfPhysiciansReadingStudy = IDENTIFYING["NameOfPhysiciansReadingStudy"]
    ds.PhysiciansOfRecord = IDENTIFYING["PhysiciansOfRecord"]
    ds.AdmittingDiagnosesDescription = IDENTIFYING["AdmittingDiagnosesDescription"]
    ds.Modality = modality
    ds.Manufacturer = "Synthetic Scanner Co"
    ds.ManufacturerModelName = "Model S"
    ds.InstitutionName = IDENTIFYING["InstitutionName"]
    ds.InstitutionAddress = IDENTIFYING["InstitutionAddress"]
    ds.InstitutionalDepartmentName = IDENTIFYING["InstitutionalDepartmentName"]
    ds.StationName = IDENTIFYING["StationName"]
    ds.DeviceSerialNumber = IDENTIFYING["DeviceSerialNumber"]
    ds.OperatorsName = IDENTIFYING["OperatorsName"]
    ds.PerformingPhysicianName = IDENTIFYING["PerformingPhysicianName"]
    ds.PerformedProcedureStepID = IDENTIFYING["PerformedProcedureStepID"]
    ds.PerformedProcedureStepDescription = IDENTIFYING["PerformedProcedureStepDescription"]
    ds.PerformedProcedureStepStartDate = STUDY_DATE
    ds.PerformedProcedureStepStartTime = STUDY_TIME
    request = Dataset()
    request.RequestedProcedureID = IDENTIFYING["RequestedProcedureID"]
    request.ScheduledProcedureStepID = IDENTIFYING["ScheduledProcedureStepID"]
    request.RequestedProcedureDescription = IDENTIFYING["RequestedProcedureDescription"]
    request.RequestingPhysician = IDENTIFYING["RequestingPhysician"]
    ds.RequestAttributesSequence = [request]
    referenced_study = Dataset()
    referenced_study.ReferencedSOPClassUID = STUDY_COMPONENT_CLASS
    referenced_study.ReferencedSOPInstanceUID = fake_uid("study-component")
    ds.ReferencedStudySequence = [referenced_study]
    pps = Dataset()
    pps.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"
    pps.ReferencedSOPInstanceUID = fake_uid("pps")
    ds.ReferencedPerformedProcedureStepSequence = [pps]
    ds.StudyUpdateDateTime = "20240313081500.000000+0100"  # a DT the table does not list: still shifted
    block = ds.private_block(0x0009, "ELSEWHERE PRIVATE 1.0", create=True)
    block.add_new(0x01, "LO", IDENTIFYING["PrivateTopLevel"])


def _image(
    ds: Dataset,
    *,
    index: int,
    stored: np.ndarray,
    position: tuple[float, float, float],
    orientation: tuple[float, ...],
    pixel_spacing: tuple[float, float],
    slope: float,
    intercept: float,
    signed: bool,
) -> None:
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()
    ds.ImageComments = IDENTIFYING["ImageComments"]


def _slice_positions(
    count: int, origin: tuple[float, float, float], orientation: tuple[float, ...], slice_spacing: float
) -> list[tuple[float, float, float]]:
    normal = np.cross(orientation[:3], orientation[3:])
    return [tuple(np.asarray(origin, dtype=float) + k * slice_spacing * normal) for k in range(count)]


def ct_series(
    stored: np.ndarray | None = None,
    *,
    origin: tuple[float, float, float] = (-40.0, -30.0, -20.0),
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: tuple[float, float] = (2.0, 2.0),  # (row spacing, column spacing)
    slice_spacing: float = 2.5,
    slope: float = 1.0,
    intercept: float = -1024.0,
    series_name: str = "ct",
) -> list[Dataset]:
    """A CT slice series (ascending z) with stored values `stored` (z, y, x) and a burst of identifying data."""
    if stored is None:
        stored = np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5) + 1000
    datasets = []
    frame = fake_uid("frame-of-reference")
    positions = _slice_positions(stored.shape[0], origin, orientation, slice_spacing)
    for k, position in enumerate(positions):
        sop_instance = fake_uid(f"{series_name}-{k}")
        ds = Dataset()
        ds.file_meta = _meta(CT_IMAGE_STORAGE, sop_instance)
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_instance
        _patient_and_study(ds, "CT")
        ds.SeriesInstanceUID = fake_uid(series_name)
        ds.SeriesDescription = IDENTIFYING["SeriesDescription"]
        ds.ProtocolName = IDENTIFYING["ProtocolName"]
        ds.SeriesDate = STUDY_DATE
        ds.SeriesTime = SERIES_TIME
        ds.AcquisitionDate = STUDY_DATE
        ds.AcquisitionTime = SERIES_TIME
        ds.ContentDate = STUDY_DATE
        ds.ContentTime = SERIES_TIME
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP = 120
        ds.SliceThickness = slice_spacing
        _image(
            ds,
            index=k,
            stored=stored[k],
            position=position,
            orientation=orientation,
            pixel_spacing=pixel_spacing,
            slope=slope,
            intercept=intercept,
            signed=True,
        )
        datasets.append(ds)
    return datasets


def pet_series(
    stored: np.ndarray | None = None,
    *,
    slopes: list[float] | None = None,
    origin: tuple[float, float, float] = (-45.0, -35.0, -22.0),
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: tuple[float, float] = (4.0, 4.0),
    slice_spacing: float = 3.0,
    series_time: str = SERIES_TIME,
    acquisition_times: list[str] | None = None,
    injection_datetime: str | None = INJECTION_DATETIME,
    injection_time: str | None = None,
) -> list[Dataset]:
    """A PET series in BQML, decay-corrected to START, with one RescaleSlope per slice."""
    if stored is None:
        stored = (np.arange(3 * 4 * 5, dtype=np.int32).reshape(3, 4, 5) * 97 + 500).astype(np.uint16)
    count = stored.shape[0]
    slopes = slopes or [0.5 + 0.25 * k for k in range(count)]
    acquisition_times = acquisition_times or [series_time] * count
    datasets = []
    positions = _slice_positions(count, origin, orientation, slice_spacing)
    for k, position in enumerate(positions):
        sop_instance = fake_uid(f"pet-{k}")
        ds = Dataset()
        ds.file_meta = _meta(PET_IMAGE_STORAGE, sop_instance)
        ds.SOPClassUID = PET_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_instance
        _patient_and_study(ds, "PT")
        ds.SeriesInstanceUID = fake_uid("pet")
        ds.SeriesDescription = IDENTIFYING["SeriesDescription"]
        ds.SeriesDate = STUDY_DATE
        ds.SeriesTime = series_time
        ds.AcquisitionDate = STUDY_DATE
        ds.AcquisitionTime = acquisition_times[k]
        ds.FrameOfReferenceUID = fake_uid("frame-of-reference")
        ds.Units = "BQML"
        ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM"]
        ds.DecayCorrection = "START"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.SliceThickness = slice_spacing
        radiopharmaceutical = Dataset()
        radiopharmaceutical.Radiopharmaceutical = "Fluorodeoxyglucose"
        if injection_datetime is not None:
            radiopharmaceutical.RadiopharmaceuticalStartDateTime = injection_datetime
        if injection_time is not None:
            radiopharmaceutical.RadiopharmaceuticalStartTime = injection_time
        radiopharmaceutical.RadionuclideTotalDose = INJECTED_DOSE_BQ
        radiopharmaceutical.RadionuclideHalfLife = F18_HALF_LIFE_S
        radiopharmaceutical.RadionuclidePositronFraction = 0.97
        radiopharmaceutical.RadionuclideCodeSequence = [_code("C-111A1", "SRT", "^18^Fluorine")]
        nested = radiopharmaceutical.private_block(0x0029, "ELSEWHERE PRIVATE 1.0", create=True)
        nested.add_new(0x01, "LO", IDENTIFYING["PrivateNested"])
        ds.RadiopharmaceuticalInformationSequence = [radiopharmaceutical]
        _image(
            ds,
            index=k,
            stored=stored[k],
            position=position,
            orientation=orientation,
            pixel_spacing=pixel_spacing,
            slope=slopes[k],
            intercept=0.0,
            signed=False,
        )
        _overlay(ds, stored.shape[1:])
        datasets.append(ds)
    return datasets


def _overlay(ds: Dataset, shape: tuple[int, int]) -> None:
    ds.add_new(0x60000010, "US", shape[0])
    ds.add_new(0x60000011, "US", shape[1])
    ds.add_new(0x60000022, "LO", IDENTIFYING["OverlayDescription"])
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", bytes((shape[0] * shape[1] + 15) // 16 * 2))


def rt_structure_set(ct: list[Dataset]) -> Dataset:
    """An RT Structure Set whose contour references the CT slices (UIDs that must stay consistent)."""
    first = ct[0]
    ds = Dataset()
    sop_instance = fake_uid("rtstruct")
    ds.file_meta = _meta(RT_STRUCTURE_SET_STORAGE, sop_instance)
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = sop_instance
    _patient_and_study(ds, "RTSTRUCT")
    ds.SeriesInstanceUID = fake_uid("rtstruct-series")
    ds.StructureSetLabel = IDENTIFYING["StructureSetLabel"]
    ds.StructureSetName = IDENTIFYING["StructureSetName"]
    ds.StructureSetDate = STUDY_DATE
    ds.StructureSetTime = SERIES_TIME
    ds.ReviewerName = IDENTIFYING["ReviewerName"]
    ds.ReviewDate = STUDY_DATE
    ds.ReviewTime = SERIES_TIME
    contour_images = []
    for slice_ds in ct:
        item = Dataset()
        item.ReferencedSOPClassUID = slice_ds.SOPClassUID
        item.ReferencedSOPInstanceUID = slice_ds.SOPInstanceUID
        contour_images.append(item)
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = contour_images
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_CLASS
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = [series]
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
    roi.ROIName = IDENTIFYING["ROIName"]
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = [roi]
    contour_image = Dataset()
    contour_image.ReferencedSOPClassUID = first.SOPClassUID
    contour_image.ReferencedSOPInstanceUID = first.SOPInstanceUID
    contour = Dataset()
    contour.ContourImageSequence = [contour_image]
    contour.ContourGeometricType = "CLOSED_PLANAR"
    z = float(first.ImagePositionPatient[2])
    contour.ContourData = [0.0, 0.0, z, 4.0, 0.0, z, 4.0, 4.0, z]
    contour.NumberOfContourPoints = 3
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = 1
    roi_contour.ROIDisplayColor = [255, 0, 0]
    roi_contour.ContourSequence = [contour]
    ds.ROIContourSequence = [roi_contour]
    observation = Dataset()
    observation.ObservationNumber = 1
    observation.ReferencedROINumber = 1
    observation.ROIObservationLabel = IDENTIFYING["ROIObservationLabel"]
    observation.RTROIInterpretedType = "GTV"
    observation.ROIInterpreter = IDENTIFYING["ReviewerName"]
    ds.RTROIObservationsSequence = [observation]
    return ds


def suv_factor_by_hand(
    weight_kg: float, dose_bq: float, half_life_s: float, injected: dt.datetime, scan: dt.datetime
) -> float:
    """SUVbw factor written out independently of imaging.dicom.suv: weight [g] / decayed dose [Bq]."""
    elapsed = (scan - injected).total_seconds()
    return weight_kg * 1000.0 / (dose_bq * 0.5 ** (elapsed / half_life_s))
