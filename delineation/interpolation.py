"""Shape-based interpolation of a segment across the empty axial slices between slices the physician drew.

Blending the two key slices' signed distance maps (in mm, inside negative) morphs one outline into the other,
where a per-voxel vote would only give their overlap. The result is a proposal the physician then edits, so
it only ever fills background: another segment and the drawn slices stay exactly as they were.
"""

import itertools

import numpy as np
from scipy import ndimage

# Around the two key slices' outlines: at least one background voxel on every side keeps the inside distances
# exact (the true nearest background can never lie beyond the ring), so cropping changes nothing but speed.
MARGIN = 2


def interpolate_segment(
    labels: np.ndarray, segment: int, spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    """A copy of labels with segment filled in on background voxels of the gaps between its slices.

    Axial slices are equally spaced, so the blend weight is the slice's fractional position and only the
    in-plane spacing matters (for anisotropic pixels).
    """
    if labels.ndim != 3:
        raise ValueError(f"a labelmap is (z, y, x), not {labels.ndim}-dimensional")
    if not 1 <= segment <= 255:
        raise ValueError(f"segment {segment} is not a segment index (1..255)")
    sampling = (float(spacing_zyx[1]), float(spacing_zyx[2]))
    result = np.array(labels, copy=True, order="C")
    keys = np.flatnonzero((labels == segment).any(axis=(1, 2)))
    for z0, z1 in itertools.pairwise(keys):
        if z1 - z0 > 1:
            _fill_gap(result, int(z0), int(z1), segment, sampling)
    return result


def _fill_gap(result: np.ndarray, z0: int, z1: int, segment: int, sampling: tuple[float, float]) -> None:
    first, last = result[z0] == segment, result[z1] == segment
    box = _box(first | last)
    distance0, distance1 = _signed_distance(first[box], sampling), _signed_distance(last[box], sampling)
    for z in range(z0 + 1, z1):
        weight = (z - z0) / (z1 - z0)
        region = result[z][box]  # a view: writes land in result
        inside = (1.0 - weight) * distance0 + weight * distance1 < 0
        region[inside & (region == 0)] = segment


def _signed_distance(mask: np.ndarray, sampling: tuple[float, float]) -> np.ndarray:
    """Distance in mm to the outline: positive outside, negative inside."""
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    return outside - inside


def _box(mask: np.ndarray) -> tuple[slice, slice]:
    """The (y, x) bounding box of the mask plus MARGIN, clipped to the slice."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (
        slice(max(rows[0] - MARGIN, 0), min(rows[-1] + MARGIN + 1, mask.shape[0])),
        slice(max(cols[0] - MARGIN, 0), min(cols[-1] + MARGIN + 1, mask.shape[1])),
    )
