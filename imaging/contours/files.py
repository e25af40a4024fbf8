"""Files at the edges of the contour conversions: a folder of CT slices in, a DICOM file out (atomically).

Exported patient folders often hold the structure set or a dose next to the CT, so only CT images are
kept; writing goes through a temporary name in the same folder so that a reader never sees half a file.
"""

import os
import uuid
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import CTImageStorage, EnhancedCTImageStorage


class CTFolderError(ValueError):
    """The folder does not hold a readable CT series; the message names the folder or file."""


def read_ct_folder(folder) -> list[Dataset]:
    """The CT images among the .dcm files of a folder (not recursive), unsorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CTFolderError(f"{folder}: not a folder of CT .dcm files.")
    datasets = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".dcm"):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise CTFolderError(f"{path.name}: not a readable DICOM file ({exc}).") from exc
        if str(ds.get("SOPClassUID", "")) in (CTImageStorage, EnhancedCTImageStorage) or ds.get("Modality") == "CT":
            datasets.append(ds)
    if not datasets:
        raise CTFolderError(f"{folder}: holds no CT images (*.dcm with modality CT).")
    return datasets


def save_dataset(ds: Dataset, path) -> None:
    """Write a Part 10 file; it appears under its name only once completely written."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        ds.save_as(temporary, enforce_file_format=True)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
