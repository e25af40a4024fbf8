"""Synthetic CT series and small shared checks for the contour tests (fictional data only)."""

import subprocess
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def make_ct_series(
    *,
    rows: int = 64,
    columns: int = 64,
    slices: int = 20,
    pixel_spacing: tuple[float, float] = (0.98, 0.98),  # (row spacing, column spacing) mm
    slice_spacing: float = 2.5,
    origin: tuple[float, float, float] = (-31.36, -25.5, -112.25),
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
    patient_id: str = "SYN-0001",
    shuffle: bool = True,
    seed: int = 0,
) -> list[FileDataset]:
    """CT slices (shuffled by default, as files arrive) whose pixels show a water cylinder in air."""
    rng = np.random.default_rng(seed)
    study_uid, series_uid, for_uid = generate_uid(), generate_uid(), generate_uid()
    row_dir, col_dir = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row_dir, col_dir)
    yy, xx = np.mgrid[:rows, :columns]
    body = (yy - rows / 2) ** 2 + (xx - columns / 2) ** 2 < (0.4 * min(rows, columns)) ** 2
    datasets = []
    for k in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, Dataset(), file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientName = "Synthetic^Phantom"
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = study_uid
        ds.StudyDate, ds.StudyTime = "20240102", "101500"
        ds.ReferringPhysicianName = ""
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 2
        ds.PatientPosition = "HFS"
        ds.BodyPartExamined = "HEADNECK"
        ds.Manufacturer = "Synthetic"
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.KVP = 120
        ds.ImagePositionPatient = [round(float(v), 6) for v in np.array(origin) + k * slice_spacing * normal]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
        ds.SliceThickness = slice_spacing
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, columns
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        pixels = np.where(body, 1024, 24).astype(np.int16) + rng.integers(0, 20, (rows, columns), dtype=np.int16)
        ds.PixelData = pixels.tobytes()
        datasets.append(ds)
    if shuffle:
        rng.shuffle(datasets)
    return datasets


def write_ct_series(datasets, folder: Path) -> list[Path]:
    """Write each slice as <folder>/CT<n>.dcm (Part 10 files) and return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, ds in enumerate(datasets):
        path = folder / f"CT{n:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def dciodvfy_errors(path) -> list[str]:
    """Lines dciodvfy reports as errors for a file (warnings are allowed)."""
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def lesion_mask(grid_shape: tuple[int, int, int]) -> np.ndarray:
    """A GTV-like mask: a lesion with a hole, a second lesion on some of the same slices, a one-voxel spot."""
    z, y, x = np.indices(grid_shape)
    nz, ny, nx = grid_shape
    mask = ((y - ny * 0.45) ** 2 + (x - nx * 0.4) ** 2 < (nx * 0.18) ** 2) & (z >= nz * 0.2) & (z < nz * 0.6)
    mask &= ~(((y - ny * 0.45) ** 2 + (x - nx * 0.4) ** 2 < (nx * 0.06) ** 2) & (z >= nz * 0.3) & (z < nz * 0.5))
    mask |= (abs(y - ny * 0.75) < ny * 0.06) & (abs(x - nx * 0.75) < nx * 0.08) & (z >= nz * 0.4) & (z < nz * 0.7)
    mask[int(nz * 0.8), 3, 3] = True
    return mask
