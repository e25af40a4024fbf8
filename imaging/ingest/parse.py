"""Parse payloads into pydicom datasets and refuse what ContourTrial cannot use, naming the file."""

from contextlib import contextmanager
from pathlib import Path

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError

from imaging.dicom.elements import DeferredValueChanged, deferred_value, uid_text, value_of

from .payloads import Payload
from .reader import read, read_file

IMAGE_MODALITIES = {"CT": "CT", "PT": "PET", "MR": "MR"}
MODALITY, PIXEL_DATA, NUMBER_OF_FRAMES, PATIENT_ID = 0x00080060, 0x7FE00010, 0x00280008, 0x00100020
ROWS, COLUMNS, SAMPLES_PER_PIXEL, BITS_ALLOCATED = 0x00280010, 0x00280011, 0x00280002, 0x00280100
REQUIRED = tuple(
    (keyword, tag_for_keyword(keyword))
    for keyword in ("Rows", "Columns", "BitsAllocated", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID",
                    "SOPClassUID")
)  # fmt: skip
UIDS = tuple((keyword, tag) for keyword, tag in REQUIRED if keyword.endswith("UID"))


class InputError(ValueError):
    """One file or series is unusable; the whole upload or association batch is refused."""


def describe(exc: Exception) -> str:
    """An exception from reading a broken file, for a person: its first line (pydicom adds tracebacks)."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 200 else text[:199] + "…"


def _expected_pixel_bytes(ds) -> int:
    frames = int(value_of(ds, NUMBER_OF_FRAMES, 1) or 1)
    rows, columns = int(value_of(ds, ROWS)), int(value_of(ds, COLUMNS))
    return rows * columns * int(value_of(ds, SAMPLES_PER_PIXEL, 1)) * frames * int(value_of(ds, BITS_ALLOCATED)) // 8


def _pixel_bytes(ds) -> int:
    """len(ds.PixelData), without decoding (or, where deferred, reading) the large element."""
    element = ds._dict[PIXEL_DATA]
    if type(element) is RawDataElement and type(element.value) is bytes:
        return len(element.value)
    deferred = deferred_value(ds, element)
    return len(deferred) if deferred is not None else len(ds.PixelData)


# Larger values (the pixel data) stay in the payload's bytes, which the dataset keeps (as dcmread's
# defer_size leaves them in its buffer): the encoder writes them from there, saving a copy of every image.
DEFER_SIZE = 64 * 1024
_SOURCE_NAME = "contourtrial_source_name"


def parse_payload(payload: Payload):
    """A payload in memory (an upload): its large values stay in its bytes until written."""
    with _read_errors(payload.name):
        ds = read(payload.data, defer_size=DEFER_SIZE)
    return check_image(ds, payload.name)


def parse_file(path: Path, name: str | None = None):
    """A file on local disk (the listener's spool, the quarantine): its large values stay in the file until
    written (elements.FileRange), so the import holds no pixel data in memory. The file must not change until
    the import is over (a change is refused when it is copied)."""
    name = name or Path(path).name
    with _read_errors(name):
        ds = read_file(path, defer_size=DEFER_SIZE)
    return check_image(ds, name)


@contextmanager
def _read_errors(name: str):
    try:
        yield
    except InvalidDicomError as exc:
        raise InputError(f"{name}: not a DICOM file (no DICM preamble).") from exc
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror or describe(exc)}).") from exc
    except Exception as exc:  # pydicom raises many kinds on broken input
        raise InputError(f"{name}: truncated or corrupt DICOM file ({describe(exc)}).") from exc


def source_name(ds) -> str:
    """The name of the file a checked dataset came from, for messages about it later in the pipeline."""
    return getattr(ds, _SOURCE_NAME, None) or "an image"


def check_image(ds, name: str):
    """Modality, SOP class and pixel data checks that apply to files from upload and C-STORE alike."""
    setattr(ds, _SOURCE_NAME, name)  # not ds.filename: pydicom reads deferred values from a file of that name
    try:
        modality = str(value_of(ds, MODALITY, "")).upper()
        if modality not in IMAGE_MODALITIES:
            allowed = ", ".join(f"{code} ({label})" for code, label in IMAGE_MODALITIES.items())
            shown = (modality if len(modality) <= 16 else modality[:16] + "…") or "missing"  # corrupt ones run long
            raise InputError(f"{name}: modality {shown} is not accepted; send {allowed} images.")
        if PIXEL_DATA not in ds._dict:
            raise InputError(f"{name}: has no pixel data.")
        for keyword, tag in REQUIRED:
            if tag not in ds._dict:
                raise InputError(f"{name}: required attribute {keyword} is missing.")
        for keyword, tag in UIDS:
            if not uid_text(ds, tag):
                raise InputError(f"{name}: required attribute {keyword} is empty.")
        value_of(ds, PATIENT_ID)  # uploads and arrivals are matched by it: it must at least be readable
        if not ds.file_meta.TransferSyntaxUID.is_compressed and _pixel_bytes(ds) < _expected_pixel_bytes(ds):
            raise InputError(
                f"{name}: pixel data is truncated ({_pixel_bytes(ds)} of {_expected_pixel_bytes(ds)} bytes)."
            )
    except InputError:
        raise
    except DeferredValueChanged as exc:
        raise InputError(str(exc)) from exc
    except Exception as exc:
        raise InputError(f"{name}: truncated or corrupt DICOM file ({describe(exc)}).") from exc
    return ds
