"""Slice series → (z, y, x) float32 volume on its Grid, SUV volumes, and resampling between grids.

The modality LUT (RescaleSlope/Intercept) is applied slice by slice because PET scanners scale each slice
separately (one slope per slice, chosen to fill the 16-bit range). Resampling goes through patient
coordinates (target voxel centre → LPS mm → continuous source index), which is how a PET volume is brought
onto the planning CT grid; it is only meaningful when both grids share a frame of reference.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging.dicom.suv import earliest_acquisition_datetime, suv_bw_factor
from imaging.geometry import Grid, SeriesError, grid_from_datasets

_SNAP = 1e-9  # matrix entries this close to an integer are snapped, so identity and whole-voxel shifts are exact


class ResampleError(ValueError):
    """Two grids cannot be related, or the array does not match its grid; the message says which."""


@dataclass(frozen=True)
class Volume:
    array: np.ndarray  # float32, (z, y, x) = (slice, row, column), in the grid's slice order
    grid: Grid


def _number(ds, keyword: str, default: float) -> float:
    value = ds.get(keyword)
    if value is None or str(value).strip() == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise SeriesError(
            f"instance {ds.get('InstanceNumber', '?')} ({ds.get('SOPInstanceUID', '?')}): {keyword} {value!r} "
            "is not numeric."
        ) from exc


def _stored(ds, shape: tuple[int, int]) -> np.ndarray:
    pixels = ds.pixel_array
    if pixels.shape != shape:
        raise SeriesError(
            f"instance {ds.get('InstanceNumber', '?')} ({ds.get('SOPInstanceUID', '?')}): pixel data has shape "
            f"{pixels.shape}, expected Rows×Columns {shape}."
        )
    return pixels.astype(np.float64)


def _load(datasets: Sequence, scale_of) -> Volume:
    grid, ordered = grid_from_datasets(datasets)
    array = np.empty(grid.shape, dtype=np.float32)
    for k, ds in enumerate(ordered):
        slope, intercept = _number(ds, "RescaleSlope", 1.0), _number(ds, "RescaleIntercept", 0.0)
        array[k] = (_stored(ds, grid.shape[1:]) * slope + intercept) * scale_of(ds)
    return Volume(array=array, grid=grid)


def load_volume(datasets: Sequence) -> Volume:
    """Check and sort a slice series (imaging.geometry) and return it in modality units (HU, Bq/ml, …)."""
    return _load(datasets, lambda ds: 1.0)


def load_suv_volume(datasets: Sequence) -> Volume:
    """A PET series in SUVbw, each slice with its own factor, scan start checked against the series' earliest
    acquisition (QIBA)."""
    earliest = earliest_acquisition_datetime(datasets)
    return _load(datasets, lambda ds: suv_bw_factor(ds, earliest_acquisition=earliest))


def _index_map(source_grid: Grid, target_grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset taking target (z, y, x) indices to continuous source (z, y, x) indices."""
    ijk = np.linalg.inv(source_grid.affine) @ target_grid.affine  # target (i, j, k, 1) → source (i, j, k, 1)
    snapped = np.round(ijk)
    ijk = np.where(np.abs(ijk - snapped) < _SNAP, snapped, ijk)
    reverse = [2, 1, 0]  # (i, j, k) ↔ (z, y, x) = (k, j, i)
    return ijk[:3, :3][np.ix_(reverse, reverse)], ijk[:3, 3][reverse]


def resample(
    volume_array: np.ndarray, source_grid: Grid, target_grid: Grid, order: int = 1, fill: float = 0.0
) -> np.ndarray:
    """Values of `volume_array` (on `source_grid`) at the voxel centres of `target_grid`.

    order: 0 nearest (masks, labels), 1 trilinear, 3 cubic spline. Target voxels outside the source get
    `fill`. Uses scipy.ndimage.affine_transform, i.e. map_coordinates with the coordinates generated on the fly:
    the patient-space mapping between two regular grids is affine, and a full coordinate array for a CT grid
    would take gigabytes. The result has the input's dtype (bool masks included).
    """
    volume_array = np.asarray(volume_array)
    if volume_array.shape != tuple(source_grid.shape):
        raise ResampleError(
            f"The array has shape {volume_array.shape} but its source grid is {tuple(source_grid.shape)} (z, y, x)."
        )
    source_frame, target_frame = source_grid.frame_of_reference_uid, target_grid.frame_of_reference_uid
    if source_frame and target_frame and source_frame != target_frame:
        raise ResampleError(
            f"FrameOfReferenceUID differs ({source_frame} vs {target_frame}): the series are not in the same patient "
            "coordinates. Register them first (or use a PET/CT pair from one scanner session)."
        )
    matrix, offset = _index_map(source_grid, target_grid)
    data = volume_array.astype(np.uint8) if volume_array.dtype == bool else volume_array
    resampled = ndimage.affine_transform(
        data,
        matrix,
        offset=offset,
        output_shape=tuple(target_grid.shape),
        order=order,
        mode="constant",
        cval=fill,
        prefilter=order > 1,
    )
    return resampled.astype(bool) if volume_array.dtype == bool else resampled
