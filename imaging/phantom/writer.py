"""Write a phantom PET/CT study as DICOM files, plus its true GTV as NIfTI and RTSTRUCT.

The files look like a real hospital export on purpose: full patient/study/equipment modules with
identifying-looking (synthetic) names, dates, accession numbers and a private block, so that ingest and
de-identification are tested on something realistic; the PET carries every attribute the QIBA SUVbw
calculation needs. No Django here; UIDs are fresh on every call (pixel data and GTV depend on the seed only).
"""

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    PositronEmissionTomographyImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from imaging.contours.files import save_dataset
from imaging.contours.maskio import write_mask
from imaging.contours.rtstruct import mask_to_rtstruct
from imaging.geometry import grid_from_datasets

from .anatomy import CtPhantom, build_ct, ct_geometry, draw_anatomy
from .pet import F18_HALF_LIFE_S, F18_POSITRON_FRACTION, PetAcquisition, PetPhantom, build_pet, draw_acquisition
from .pet import pet_geometry as make_pet_geometry

HU_INTERCEPT = -1024
INT16_MAX = 32767
AXIAL = [1, 0, 0, 0, 1, 0]


@dataclass(frozen=True)
class PhantomFiles:
    ct_dir: Path
    pet_dir: Path
    rtstruct: Path
    gtv_nifti: Path
    summary: dict


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _da(moment: dt.datetime | dt.date) -> str:
    return moment.strftime("%Y%m%d")


def _tm(moment: dt.datetime) -> str:
    return moment.strftime("%H%M%S.%f")


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CONTOURTRIAL"
    return meta


@dataclass(frozen=True)
class _Study:
    """What all series of the phantom's study share."""

    seed: int
    study_uid: str
    frame_uid: str
    start: dt.datetime
    birth_date: dt.date
    sex: str
    age: int
    weight_kg: float
    height_m: float

    def fill(self, ds: Dataset, modality: str) -> None:
        """Patient, general study, patient study, general equipment modules and identifying extras."""
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName = f"PHANTOM^{self.seed}"
        ds.PatientID = f"PHANTOM-{self.seed}"
        ds.PatientBirthDate = _da(self.birth_date)
        ds.PatientSex = self.sex
        ds.PatientAge = f"{self.age:03d}Y"
        ds.PatientWeight = _ds(self.weight_kg)
        ds.PatientSize = _ds(self.height_m)
        ds.PatientAddress = f"{self.seed} Synthetic Street, Phantom Town"
        other = Dataset()
        other.PatientID, other.IssuerOfPatientID, other.TypeOfPatientID = f"MRN{self.seed:08d}", "SUH", "TEXT"
        ds.OtherPatientIDsSequence = Sequence([other])
        ds.StudyInstanceUID = self.study_uid
        ds.StudyDate = _da(self.start)
        ds.StudyTime = _tm(self.start)
        ds.StudyID = f"S{self.seed}"
        ds.StudyDescription = "PET-CT HEAD NECK RT PLANNING"
        ds.AccessionNumber = f"ACC{self.seed:07d}"
        ds.ReferringPhysicianName = "REFERRER^SYNTHETIC"
        ds.PerformingPhysicianName = "PERFORMER^SYNTHETIC"
        ds.OperatorsName = "OPERATOR^SYNTHETIC"
        ds.InstitutionName = "Synthetic University Hospital"
        ds.InstitutionAddress = "1 Phantom Road, Nowhere"
        ds.InstitutionalDepartmentName = "Nuclear Medicine and Radiotherapy"
        ds.StationName = f"PHANTOM-{modality}01"
        ds.Manufacturer = "ContourTrial"
        ds.ManufacturerModelName = "Synthetic PET/CT"
        ds.DeviceSerialNumber = f"SN{1000 + self.seed % 9000}"
        ds.SoftwareVersions = "phantom 1.0"
        ds.FrameOfReferenceUID = self.frame_uid
        ds.PositionReferenceIndicator = None
        ds.BodyPartExamined = "HEADNECK"
        if modality == "CT":  # PET states it in PatientOrientationCodeSequence / PatientGantryRelationship
            ds.PatientPosition = "HFS"
        block = ds.private_block(0x0011, "CONTOURTRIAL PHANTOM", create=True)
        block.add_new(0x01, "LO", f"Home address of PHANTOM-{self.seed}")
        block.add_new(0x02, "PN", f"PHANTOM^{self.seed}^NEXT^OF^KIN")
        block.add_new(0x03, "DA", _da(self.birth_date))


def _plane_constants(ds: Dataset, pixel_spacing: float, thickness: float, rows: int, columns: int) -> None:
    ds.ImageOrientationPatient = AXIAL
    ds.PixelSpacing = [_ds(pixel_spacing), _ds(pixel_spacing)]
    ds.SliceThickness = _ds(thickness)
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16


def _instance(template: Dataset, sop_class: str, number: int, xyz) -> Dataset:
    """A new instance sharing the template's (never mutated) elements: much faster than setting each again."""
    ds = Dataset(dict(template._dict))
    sop_uid = generate_uid()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [_ds(v) for v in xyz]
    ds.SliceLocation = _ds(xyz[2])
    return ds


def _ct_datasets(ct: CtPhantom, study: _Study) -> list[Dataset]:
    g = ct.geometry
    start = study.start
    template = Dataset()
    study.fill(template, "CT")
    template.SOPClassUID = CTImageStorage
    template.InstanceCreationDate, template.InstanceCreationTime = _da(start), _tm(start + dt.timedelta(minutes=2))
    template.Modality = "CT"
    template.SeriesInstanceUID = generate_uid()
    template.SeriesNumber = 2
    template.SeriesDescription = f"CT HN {g.spacing[0]:g}mm planning"
    template.SeriesDate, template.SeriesTime = _da(start), _tm(start)
    template.AcquisitionDate, template.AcquisitionTime = _da(start), _tm(start + dt.timedelta(seconds=5))
    template.ContentDate, template.ContentTime = _da(start), _tm(start + dt.timedelta(minutes=1))
    template.AcquisitionNumber = 1
    template.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    template.ScanOptions = "HELICAL MODE"
    template.KVP = "120"
    template.XRayTubeCurrent = 200
    template.ExposureTime = 1000
    template.ConvolutionKernel = "STANDARD"
    template.ReconstructionDiameter = _ds(g.spacing[1] * g.shape[1])
    template.DataCollectionDiameter = "500"
    template.GantryDetectorTilt = "0"
    template.TableHeight = "150"
    _plane_constants(template, g.spacing[1], g.spacing[0], g.shape[1], g.shape[2])
    template.BitsStored, template.HighBit, template.PixelRepresentation = 12, 11, 0
    template.RescaleIntercept, template.RescaleSlope, template.RescaleType = str(HU_INTERCEPT), "1", "HU"
    template.WindowCenter, template.WindowWidth = "40", "400"
    stored = (ct.hu.astype(np.int32) - HU_INTERCEPT).astype(np.uint16)
    datasets = []
    for k in range(g.shape[0]):  # instance 1 is the top slice, as a head-first scan acquires it
        ds = _instance(template, CTImageStorage, g.shape[0] - k, (g.origin[0], g.origin[1], g.zs[k]))
        ds.PixelData = stored[k].tobytes()
        datasets.append(ds)
    return datasets


def _pet_datasets(pet: PetPhantom, study: _Study) -> list[Dataset]:
    g, acquisition = pet.geometry, pet.acquisition
    start = acquisition.scan_start
    decay = np.log(2) / F18_HALF_LIFE_S
    frame = acquisition.bed_seconds
    template = Dataset()
    study.fill(template, "PT")
    template.SOPClassUID = PositronEmissionTomographyImageStorage
    template.InstanceCreationDate = _da(start)
    template.InstanceCreationTime = _tm(start + dt.timedelta(minutes=20))
    template.Modality = "PT"
    template.SeriesInstanceUID = generate_uid()
    template.SeriesNumber = 3
    template.SeriesDescription = "PET FDG HN AC"
    template.SeriesDate, template.SeriesTime = _da(start), _tm(start)
    template.ContentDate, template.ContentTime = _da(start), _tm(start + dt.timedelta(minutes=15))
    template.NumberOfSlices = g.shape[0]
    template.ImageType = ["ORIGINAL", "PRIMARY"]
    # PET series module
    template.Units = "BQML"
    template.CountsSource = "EMISSION"
    template.SeriesType = ["WHOLE BODY", "IMAGE"]
    template.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
    template.DecayCorrection = "START"
    template.RandomsCorrectionMethod = "DLYD"
    template.AttenuationCorrectionMethod = "measured, CT-based"
    template.ScatterCorrectionMethod = "model-based single scatter simulation"
    template.ReconstructionMethod = "OSEM 3i21s PSF TOF"
    template.ReconstructionDiameter = _ds(g.spacing[1] * g.shape[1])
    template.ConvolutionKernel = f"Gaussian {acquisition.fwhm_mm:.1f}mm"
    template.CollimatorType = "NONE"
    template.AxialAcceptance = "1"
    template.AxialMash = [1, 1]
    template.AcquisitionStartCondition = "MANU"
    template.AcquisitionTerminationCondition = "TIME"
    template.FieldOfViewShape = "CYLINDRICAL RING"
    template.GantryDetectorTilt = "0"
    window = Dataset()
    window.EnergyWindowLowerLimit, window.EnergyWindowUpperLimit = "435", "650"
    template.EnergyWindowRangeSequence = Sequence([window])
    template.RadiopharmaceuticalInformationSequence = Sequence([_radiopharmaceutical(acquisition)])
    template.PatientGantryRelationshipCodeSequence = Sequence([_code("102540008", "SCT", "headfirst")])
    orientation = _code("102538003", "SCT", "recumbent")
    orientation.PatientOrientationModifierCodeSequence = Sequence([_code("40199007", "SCT", "supine")])
    template.PatientOrientationCodeSequence = Sequence([orientation])
    template.ActualFrameDuration = int(frame * 1000)
    template.DoseCalibrationFactor = "1"
    template.SliceSensitivityFactor = "1"
    template.DeadTimeFactor = "1.02"
    template.ScatterFractionFactor = "0.35"
    _plane_constants(template, g.spacing[1], g.spacing[0], g.shape[1], g.shape[2])
    template.BitsStored, template.HighBit, template.PixelRepresentation = 16, 15, 1
    template.RescaleIntercept = "0"
    datasets = []
    for k in range(g.shape[0]):
        index = g.shape[0] - k  # top slice first, as acquired head first
        ds = _instance(template, PositronEmissionTomographyImageStorage, index, (g.origin[0], g.origin[1], g.zs[k]))
        ds.ImageIndex = index
        started = float(pet.frame_start_s[k])  # this slice's bed position: its timing and decay
        frame_start = start + dt.timedelta(seconds=started)
        ds.AcquisitionDate, ds.AcquisitionTime = _da(frame_start), _tm(frame_start)
        ds.FrameReferenceTime = _ds((started + frame / 2) * 1000)
        ds.DecayFactor = _ds(np.exp(decay * started) * decay * frame / (1 - np.exp(-decay * frame)))
        values = pet.activity[k]
        peak = float(values.max())
        slope = float(_ds(peak / INT16_MAX if peak > 0 else 1.0))  # per-slice slope: the maximum uses the range
        stored = np.clip(np.rint(values / slope), 0, INT16_MAX).astype(np.int16)
        ds.RescaleSlope = _ds(slope)
        ds.SmallestImagePixelValue, ds.LargestImagePixelValue = int(stored.min()), int(stored.max())
        ds.PixelData = stored.tobytes()
        datasets.append(ds)
    return datasets


def _radiopharmaceutical(acquisition: PetAcquisition) -> Dataset:
    item = Dataset()
    item.Radiopharmaceutical = "Fluorodeoxyglucose"
    item.RadiopharmaceuticalRoute = "Intravenous"
    item.RadiopharmaceuticalStartTime = _tm(acquisition.injection)
    item.RadiopharmaceuticalStartDateTime = acquisition.injection.strftime("%Y%m%d%H%M%S.%f")
    item.RadionuclideTotalDose = _ds(acquisition.injected_bq)
    item.RadionuclideHalfLife = _ds(F18_HALF_LIFE_S)
    item.RadionuclidePositronFraction = _ds(F18_POSITRON_FRACTION)
    item.RadionuclideCodeSequence = Sequence([_code("C-111A1", "SRT", "^18^Fluorine")])
    item.RadiopharmaceuticalCodeSequence = Sequence([_code("C-B1031", "SRT", "Fluorodeoxyglucose F^18^")])
    return item


def _write_series(folder: Path, prefix: str, datasets: list[Dataset]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{prefix}_*.dcm"):  # a rerun with fewer slices must not leave extra ones
        stale.unlink()
    for ds in datasets:
        dcmwrite(folder / f"{prefix}_{int(ds.InstanceNumber):04d}.dcm", ds, enforce_file_format=True)


def _column_major(mask: np.ndarray) -> np.ndarray:
    """The same mask in Fortran order, NIfTI's on-disk order: saves write_mask a slow transposing copy."""
    copy = np.zeros(mask.shape, dtype=bool, order="F")
    copy[np.nonzero(mask)] = True
    return copy


def write_phantom(outdir: Path, seed: int, *, rows: int = 512, slices: int | None = None) -> PhantomFiles:
    """Generate phantom `seed` and write ct/, pet/, gtv.nii.gz, gtv_rtstruct.dcm and summary.json."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    anatomy = draw_anatomy(seed)
    ct = build_ct(anatomy, ct_geometry(anatomy, rows=rows, slices=slices))
    acquisition = draw_acquisition(anatomy)
    pet = build_pet(anatomy, make_pet_geometry(anatomy, ct.geometry), acquisition)
    birth = acquisition.ct_start.date().replace(year=acquisition.ct_start.year - anatomy.age) - dt.timedelta(
        days=seed % 300
    )
    study = _Study(
        seed=seed, study_uid=generate_uid(), frame_uid=generate_uid(), start=acquisition.ct_start, birth_date=birth,
        sex=anatomy.sex, age=anatomy.age, weight_kg=anatomy.weight_kg, height_m=anatomy.height_m,
    )  # fmt: skip
    ct_datasets = _ct_datasets(ct, study)
    pet_datasets = _pet_datasets(pet, study)
    grid, _ = grid_from_datasets(ct_datasets)
    if grid.shape != ct.geometry.shape or not np.allclose(grid.affine, ct.geometry.affine, atol=1e-3):
        raise RuntimeError(f"Phantom CT grid {grid.shape} does not match its geometry {ct.geometry.shape}.")
    files = PhantomFiles(
        ct_dir=outdir / "ct", pet_dir=outdir / "pet", rtstruct=outdir / "gtv_rtstruct.dcm",
        gtv_nifti=outdir / "gtv.nii.gz", summary=summarise(ct, pet),
    )  # fmt: skip
    _write_series(files.ct_dir, "CT", ct_datasets)
    _write_series(files.pet_dir, "PT", pet_datasets)
    gtv = ct.gtv
    write_mask(files.gtv_nifti, _column_major(gtv), grid)
    save_dataset(mask_to_rtstruct(gtv, ct_datasets, roi_name="GTV"), files.rtstruct)
    (outdir / "summary.json").write_text(json.dumps(files.summary, indent=2) + "\n")
    return files


def summarise(ct: CtPhantom, pet: PetPhantom) -> dict:
    """What was generated, for the command's report and for tests (sizes in mm, volumes in cm³)."""
    anatomy, g, acquisition = ct.anatomy, ct.geometry, pet.acquisition
    voxel = g.voxel_volume_ml
    lesions = []
    for lesion in anatomy.lesions:
        mask = ct.primary if lesion.kind == "primary" else ct.nodes
        lesions.append({
            "kind": lesion.kind, "site": lesion.site, "side": lesion.side,
            "volume_cm3": round(float(mask.sum()) * voxel, 2), "suv_max": round(pet.suv_max.get(lesion.kind, 0.0), 2),
        })  # fmt: skip
    return {
        "seed": anatomy.seed,
        "ct": {"rows": g.shape[1], "columns": g.shape[2], "slices": g.shape[0], "pixel_spacing_mm": g.spacing[1],
               "slice_thickness_mm": g.spacing[0]},
        "pet": {"rows": pet.geometry.shape[1], "columns": pet.geometry.shape[2], "slices": pet.geometry.shape[0],
                "pixel_spacing_mm": pet.geometry.spacing[1], "slice_thickness_mm": pet.geometry.spacing[0]},
        "gtv_volume_cm3": round(float(ct.gtv.sum()) * voxel, 2),
        "lesions": lesions,
        "suv_max": round(max(pet.suv_max.values(), default=0.0), 2),
        "patient_weight_kg": acquisition.weight_kg,
        "injected_dose_mbq": round(acquisition.injected_bq / 1e6, 1),
        "uptake_minutes": round(acquisition.uptake_seconds / 60, 1),
    }  # fmt: skip
