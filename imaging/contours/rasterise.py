"""Closed planar polygons → mask slice, by pixel-centre inclusion with the even–odd rule.

All rings of a slice are combined by XOR (a ring inside another is a hole, a ring inside a hole an
island), which is what DICOM RTSTRUCT readers conventionally do with several contours on one plane.
Vertices may lie anywhere (sub-pixel); a pixel belongs to the mask when its centre is inside. Ties (a
centre exactly on an edge) follow the usual half-open rule: left/top borders inside, right/bottom out.
"""

from collections.abc import Iterable

import numpy as np


def polygons_to_mask_slice(rings: Iterable[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise rings of (column, row) continuous index coordinates onto a (rows, columns) bool slice."""
    rows, cols = (int(n) for n in shape)
    polygons = []
    for ring in rings:
        points = np.asarray(ring, dtype=float)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"A ring must be an (N, 2) array of (column, row) points, got shape {points.shape}.")
        if len(points) < 3:
            continue  # a point or a segment encloses no pixel centre
        polygons.append(points)
    if not polygons:
        return np.zeros((rows, cols), dtype=bool)
    p0 = np.concatenate(polygons)
    lengths = np.array([len(p) for p in polygons])
    following = np.arange(1, len(p0) + 1)
    following[np.cumsum(lengths) - 1] = np.cumsum(lengths) - lengths  # each ring's last vertex joins its first
    p1 = p0[following]
    y0, y1 = p0[:, 1], p1[:, 1]
    # Pixel-centre rows r crossed by each edge under the half-open rule min(y) <= r < max(y).
    low = np.clip(np.ceil(np.minimum(y0, y1)), 0, rows).astype(np.int64)
    high = np.clip(np.ceil(np.maximum(y0, y1)), 0, rows).astype(np.int64)
    counts = np.where(y0 != y1, high - low, 0)
    edge = np.repeat(np.arange(len(p0)), counts)
    row = np.repeat(low, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    t = (row - y0[edge]) / (y1[edge] - y0[edge])
    x = p0[edge, 0] + t * (p1[edge, 0] - p0[edge, 0])
    # A crossing at x toggles every pixel whose centre c < x (ray cast towards +column): columns 0..ceil(x)-1.
    stop = np.clip(np.ceil(x), 0, cols).astype(np.int64)
    size = rows * (cols + 1)
    toggles = np.bincount(row * (cols + 1), minlength=size) - np.bincount(row * (cols + 1) + stop, minlength=size)
    return (np.cumsum(toggles.reshape(rows, cols + 1)[:, :cols], axis=1) & 1).astype(bool)
