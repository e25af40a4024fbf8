"""Parse payloads into pydicom datasets and refuse what ContourTrial cannot use, naming the file."""

import io

import pydicom
from pydicom.errors import InvalidDicomError

from .payloads import Payload

IMAGE_MODALITIES = {"CT": "CT", "PT": "PET", "MR": "MR"}


class InputError(ValueError):
    """One file or series is unusable; the whole upload or association batch is refused."""


def _expected_pixel_bytes(ds) -> int:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * frames * int(ds.BitsAllocated) // 8


def parse_payload(payload: Payload):
    try:
        ds = pydicom.dcmread(io.BytesIO(payload.data))
    except InvalidDicomError as exc:
        raise InputError(f"{payload.name}: not a DICOM file (no DICM preamble).") from exc
    except Exception as exc:  # pydicom raises many kinds on broken input
        raise InputError(f"{payload.name}: truncated or corrupt DICOM file ({type(exc).__name__}: {exc}).") from exc
    return check_image(ds, payload.name)


def check_image(ds, name: str):
    """Modality, SOP class and pixel data checks that apply to files from upload and C-STORE alike."""
    try:
        modality = str(ds.get("Modality", "")).upper()
        if modality not in IMAGE_MODALITIES:
            allowed = ", ".join(f"{code} ({label})" for code, label in IMAGE_MODALITIES.items())
            raise InputError(f"{name}: modality {modality or 'missing'} is not accepted; send {allowed} images.")
        if "PixelData" not in ds:
            raise InputError(f"{name}: has no pixel data.")
        for keyword in ("Rows", "Columns", "BitsAllocated", "SOPInstanceUID", "SeriesInstanceUID",
                        "StudyInstanceUID", "SOPClassUID"):  # fmt: skip
            if keyword not in ds:
                raise InputError(f"{name}: required attribute {keyword} is missing.")
        if not ds.file_meta.TransferSyntaxUID.is_compressed and len(ds.PixelData) < _expected_pixel_bytes(ds):
            raise InputError(
                f"{name}: pixel data is truncated ({len(ds.PixelData)} of {_expected_pixel_bytes(ds)} bytes)."
            )
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{name}: truncated or corrupt DICOM file ({type(exc).__name__}: {exc}).") from exc
    return ds
