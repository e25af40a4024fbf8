"""Image geometry: a series' voxel grid in patient space, and the checks that make a series usable.

Pure Python + numpy + pydicom datasets; no Django. Array order is (z, y, x) = (slice, row, column),
with slices sorted by ImagePositionPatient projected on the slice normal (ascending), as in
../shared/ARCHITECTURE.md. The affine maps (column i, row j, slice k, 1) to LPS millimetres.
"""

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom import config
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement

from imaging.dicom.elements import default_decoding, uid_text, value_of

ORIENTATION_TOLERANCE = 1e-4
POSITION_TOLERANCE_MM = 0.01
SPACING_RELATIVE_TOLERANCE = 0.02  # a slice gap differing by more than 2 % is a missing slice or an uneven series


class SeriesError(ValueError):
    """A series cannot be used as a volume; the message names the problem and the slice."""


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, int, int]  # (slices, rows, columns)
    affine: np.ndarray  # 4×4, index (i=column, j=row, k=slice, 1) → patient LPS mm
    frame_of_reference_uid: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uids: tuple[str, ...]  # one per slice, in z order
    sop_class_uid: str = ""

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(slice, row, column) spacing in mm."""
        return tuple(float(np.linalg.norm(self.affine[:3, axis])) for axis in (2, 1, 0))

    @property
    def normal(self) -> np.ndarray:
        return self.affine[:3, 2] / np.linalg.norm(self.affine[:3, 2])

    def index_to_patient(self, ijk: np.ndarray) -> np.ndarray:
        """(N, 3) array of (i, j, k) indices → (N, 3) LPS mm."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def patient_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) LPS mm → (N, 3) continuous (i, j, k) indices."""
        xyz = np.asarray(xyz, dtype=float)
        return (xyz - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T

    def slice_positions(self) -> np.ndarray:
        """Each slice's position projected on the slice normal (mm), ascending."""
        origins = self.index_to_patient(np.array([[0, 0, k] for k in range(self.shape[0])]))
        return origins @ self.normal


def _floats(ds, keyword: str, count: int, where) -> np.ndarray:
    """The numbers of a DS attribute; `where` (text, or a callable giving it) names the image in errors."""
    fast = _raw_numbers(ds, _TAGS[keyword])
    if fast is not None and len(fast) == count:
        return np.array(fast, dtype=float)
    value = ds.get(keyword)
    if value is None:
        raise SeriesError(f"{_where(where)}: {keyword} is missing.")
    try:
        array = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError) as exc:
        raise SeriesError(f"{_where(where)}: {keyword} {value!r} is not numeric.") from exc
    if array.shape != (count,):
        raise SeriesError(f"{_where(where)}: {keyword} must have {count} values, has {array.size}.")
    return array


_KEYWORDS = ("ImageOrientationPatient", "PixelSpacing", "ImagePositionPatient", "SeriesInstanceUID", "SOPInstanceUID")
_KEYWORDS += ("Rows", "Columns", "PixelData", "NumberOfFrames")
_TAGS = {keyword: tag_for_keyword(keyword) for keyword in _KEYWORDS}
# A DS value pydicom reads without a warning: plain decimal numbers of at most 16 characters, backslash-separated.
_PLAIN_DS = re.compile(rb" *[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)? *")


def _raw_numbers(ds, tag: int) -> list[float] | None:
    """The numbers of an undecoded DS element read straight from its bytes, leaving the element undecoded
    (a series check reads three of them from every image): exactly the floats pydicom's DSfloat values hold.
    None for anything but plain decimal numbers read the stock way; the caller then decodes the element."""
    element = ds._dict.get(tag)
    if type(element) is not RawDataElement or type(element.value) is not bytes or element.VR not in ("DS", None):
        return None
    if config.use_DS_decimal or config.use_DS_numpy or not default_decoding():
        return None
    parts = element.value.rstrip(b" \x00").split(b"\\")
    for part in parts:
        if len(part) > 16 or not _PLAIN_DS.fullmatch(part):
            return None
    return [float(part) for part in parts]


def _where(where) -> str:
    return where() if callable(where) else where


def _describe(ds) -> str:
    return f"instance {ds.get('InstanceNumber', '?')} ({ds.get('SOPInstanceUID', 'no SOPInstanceUID')})"


def _size(ds) -> tuple:
    """(Rows, Columns) as ds.get gives them, read without decoding them into the dataset."""
    return value_of(ds, _TAGS["Rows"]), value_of(ds, _TAGS["Columns"])


def sort_slices(datasets: Sequence) -> list:
    """Sort single-frame slices along the normal and check they form one regular volume.

    Refuses, naming the slice: mixed series, missing geometry, inconsistent orientation, pixel spacing
    or size, gantry tilt (slices not stacked along the normal), duplicated positions and gaps.
    """
    if not datasets:
        raise SeriesError("The series has no images.")
    first = datasets[0]
    series_uids = {uid_text(ds, _TAGS["SeriesInstanceUID"]) for ds in datasets}
    if len(series_uids) > 1:
        raise SeriesError(f"The images belong to {len(series_uids)} different series; send one series at a time.")
    orientation = _floats(first, "ImageOrientationPatient", 6, functools.partial(_describe, first))
    row_dir, col_dir = orientation[:3], orientation[3:]
    if (
        abs(np.linalg.norm(row_dir) - 1) > 1e-3
        or abs(np.linalg.norm(col_dir) - 1) > 1e-3
        or abs(row_dir @ col_dir) > 1e-3
    ):
        raise SeriesError(f"{_describe(first)}: ImageOrientationPatient is not two orthonormal directions.")
    normal = np.cross(row_dir, col_dir)
    spacing = _floats(first, "PixelSpacing", 2, functools.partial(_describe, first))
    size = _size(first)
    positioned = []
    for ds in datasets:
        where = functools.partial(_describe, ds)  # only needed for an error
        if _TAGS["PixelData"] not in ds._dict:
            raise SeriesError(f"{where()}: has no pixel data.")
        if int(value_of(ds, _TAGS["NumberOfFrames"], 1) or 1) != 1:
            raise SeriesError(f"{where()}: multi-frame images are not supported in a slice series.")
        if np.abs(_floats(ds, "ImageOrientationPatient", 6, where) - orientation).max() > ORIENTATION_TOLERANCE:
            raise SeriesError(f"{where()}: ImageOrientationPatient differs from the rest of the series.")
        if np.abs(_floats(ds, "PixelSpacing", 2, where) - spacing).max() > 1e-4:
            raise SeriesError(f"{where()}: PixelSpacing differs from the rest of the series.")
        if _size(ds) != size:
            raise SeriesError(
                f"{where()}: image size {ds.get('Rows')}×{ds.get('Columns')} differs from {size[0]}×{size[1]}."
            )
        position = _floats(ds, "ImagePositionPatient", 3, where)
        positioned.append((float(position @ normal), position, ds))
    positioned.sort(key=lambda item: item[0])
    if len(positioned) > 1:
        distances = np.diff([p[0] for p in positioned])
        for d, (_, _, ds) in zip(distances, positioned[1:], strict=True):
            if d < POSITION_TOLERANCE_MM:
                x, y, z = (float(v) for v in ds.ImagePositionPatient)
                raise SeriesError(
                    f"{_describe(ds)}: duplicated slice position ({x:.2f}, {y:.2f}, {z:.2f}) mm: "
                    "two images lie at the same place."
                )
        step = float(np.median(distances))
        for d, (proj, _, ds) in zip(distances, positioned[1:], strict=True):
            if abs(d - step) > SPACING_RELATIVE_TOLERANCE * step:
                kind = "missing slice (gap)" if d > step else "uneven slice spacing"
                raise SeriesError(
                    f"{kind} before {_describe(ds)} at {proj:.2f} mm: {d:.2f} mm instead of {step:.2f} mm."
                )
        origins = np.array([p[1] for p in positioned])
        lateral = origins - origins[0] - np.outer(origins @ normal - origins[0] @ normal, normal)
        if np.abs(lateral).max() > max(0.05, 0.01 * step):
            raise SeriesError(
                "The slices are not stacked along the slice normal (gantry tilt or a sheared series); "
                "resample the series on the scanner before sending it."
            )
    return [p[2] for p in positioned]


def _sop_instance_uid(ds) -> str:
    """str(ds.SOPInstanceUID) (AttributeError where it is missing), without decoding it into the dataset."""
    uid = uid_text(ds, _TAGS["SOPInstanceUID"])
    return str(ds.SOPInstanceUID) if uid is None else uid


def grid_from_datasets(datasets: Sequence) -> tuple[Grid, list]:
    """Check and sort a slice series; return its grid and the datasets in z order."""
    ordered = sort_slices(datasets)
    first = ordered[0]
    orientation = np.array([float(v) for v in first.ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    origin = np.array([float(v) for v in first.ImagePositionPatient])
    if len(ordered) > 1:
        last = np.array([float(v) for v in ordered[-1].ImagePositionPatient])
        slice_step = (last - origin) / (len(ordered) - 1)
    else:
        thickness = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
        slice_step = normal * thickness
    affine = np.eye(4)
    affine[:3, 0] = row_dir * col_spacing
    affine[:3, 1] = col_dir * row_spacing
    affine[:3, 2] = slice_step
    affine[:3, 3] = origin
    grid = Grid(
        shape=(len(ordered), int(first.Rows), int(first.Columns)),
        affine=affine,
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
        study_instance_uid=str(first.get("StudyInstanceUID", "")),
        series_instance_uid=str(first.get("SeriesInstanceUID", "")),
        sop_instance_uids=tuple(_sop_instance_uid(ds) for ds in ordered),
        sop_class_uid=str(first.get("SOPClassUID", "")),
    )
    return grid, ordered
