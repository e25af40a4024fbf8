"""Size of a panel correction: overlap and surface metrics between two masks on one CT grid.

BEFORE is the contour that was judged (submitted, or the AI proposal) and AFTER the one that came out
(approved, or submitted). Definitions, conventions for empty masks and the agreement with the reference
implementation are in docs/METRICS.md.

The surface follows Nikolov et al. 2021 so that the numbers agree with DeepMind's `surface-distance`
library: surface elements ("surfels") sit on the corners between voxels, one per 2×2×2 neighbourhood that
is neither all inside nor all outside; each carries the area of the marching-cubes triangles inside that
neighbourhood, and distances go from surfel to nearest surfel of the other mask. The triangle areas are
derived below from the cube geometry (not copied from the library). All work is restricted to the bounding
box of the two masks, so a GTV on a full CT grid costs little more than the GTV itself. Pure numpy/scipy.
"""

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

# ------------------------------------------------------------------------- marching-cubes surfel areas
# A corner of the 2×2×2 neighbourhood is (a, b, c) ∈ {0, 1}³ along array axes (0, 1, 2); it sets bit
# 7 − (4a + 2b + c) of the neighbourhood code. Cut points are edge midpoints, kept as doubled integer
# coordinates (the sum of the edge's two corners) so that they compare exactly.

_CORNERS = list(itertools.product((0, 1), repeat=3))


def _bit(corner) -> int:
    return 7 - (4 * corner[0] + 2 * corner[1] + corner[2])


def _faces() -> list[list[tuple[int, int, int]]]:
    """The cube's six faces, each as its four corners in cyclic order."""
    faces = []
    for axis, value in itertools.product(range(3), (0, 1)):
        u, v = (i for i in range(3) if i != axis)
        ring = []
        for du, dv in ((0, 0), (0, 1), (1, 1), (1, 0)):
            corner = [0, 0, 0]
            corner[axis], corner[u], corner[v] = value, du, dv
            ring.append(tuple(corner))
        faces.append(ring)
    return faces


def _cut(p, q) -> tuple[int, int, int]:
    return tuple(int(x + y) for x, y in zip(p, q, strict=True))


def _polygons(inside: set) -> list[list[tuple[int, int, int]]]:
    """Closed marching-cubes polygons of one neighbourhood; on a face with two diagonal inside corners the
    inside corners are kept apart (callers pass the minority side, so at most four corners are inside)."""
    segments = []
    for ring in _faces():
        flags = [corner in inside for corner in ring]
        if sum(flags) in (0, 4):
            continue
        if flags in ([True, False, True, False], [False, True, False, True]):
            for i in range(4):
                if flags[i]:
                    segments.append((_cut(ring[i], ring[i - 1]), _cut(ring[i], ring[(i + 1) % 4])))
            continue
        cuts = [_cut(ring[i], ring[(i + 1) % 4]) for i in range(4) if flags[i] != flags[(i + 1) % 4]]
        segments.append((cuts[0], cuts[1]))
    polygons = []
    while segments:
        start, point = segments.pop()
        polygon = [start]
        while point != start:
            polygon.append(point)
            index = next(i for i, s in enumerate(segments) if point in s)
            a, b = segments.pop(index)
            point = b if a == point else a
        polygons.append(polygon)
    return polygons


def _edge_axis(point) -> int:
    return next(i for i in range(3) if point[i] == 1)


def _triangles(polygon: list, inside: set) -> list[tuple[int, int, int]]:
    """Triangulation of one polygon, chosen as the reference's table does where the polygon is not planar:
    a pentagon is fanned from a neighbour of the middle one of its three points on parallel edges; the
    twisted hexagon keeps the central triangle opposite a point whose inside corner has two inside
    neighbours. Triangles and quadrilaterals are planar, so any fan gives the same area."""
    n = len(polygon)
    if n == 5:
        middle = next(m for m in range(5) if len({_edge_axis(polygon[(m + d) % 5]) for d in (-1, 0, 1)}) == 1)
        apex = (middle + 1) % 5
        return [(apex, (apex + i) % 5, (apex + i + 1) % 5) for i in range(1, 4)]
    if n == 6:

        def inside_neighbours(point):
            axis = _edge_axis(point)
            corner = next(c for c in inside if all(2 * c[i] == point[i] for i in range(3) if i != axis))
            return sum(tuple(1 - c if i == j else c for j, c in enumerate(corner)) in inside for i in range(3))

        start = next((i for i, point in enumerate(polygon) if inside_neighbours(point) == 2), 0)
        s = [(start + i) % 6 for i in range(6)]
        return [(s[0], s[1], s[5]), (s[1], s[2], s[3]), (s[3], s[4], s[5]), (s[1], s[3], s[5])]
    if n in (3, 4):
        return [(0, i, i + 1) for i in range(1, n - 1)]
    raise AssertionError(f"unexpected {n}-gon")  # cannot happen with at most four inside corners


@lru_cache(maxsize=1)
def _triangle_vectors() -> np.ndarray:
    """(256, 4, 3): |area vector| of each triangle of each code on the unit cube, zero-padded."""
    table = np.zeros((256, 4, 3))
    for code in range(1, 255):
        inside = {c for c in _CORNERS if code >> _bit(c) & 1}
        if len(inside) > 4:  # the complement has the same surface and fewer corners
            inside = set(_CORNERS) - inside
        k = 0
        for polygon in _polygons(inside):
            points = np.asarray(polygon, dtype=float) / 2
            for i, j, m in _triangles(polygon, inside):
                table[code, k] = np.abs(np.cross(points[j] - points[i], points[m] - points[i])) / 2
                k += 1
    return table


@lru_cache(maxsize=32)
def surfel_area_table(spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Surfel area (mm²) for each of the 256 neighbourhood codes: each triangle's area vector scales with the
    cofactors of the voxel size (an x-facing triangle grows with sy·sz, and so on)."""
    sz, sy, sx = spacing_mm
    scale = np.array([sy * sx, sz * sx, sz * sy])
    table = np.linalg.norm(_triangle_vectors() * scale, axis=2).sum(axis=1)
    table.flags.writeable = False
    return table


# ----------------------------------------------------------------------------------------- geometry


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Slices of the smallest box holding all True voxels; None for an empty mask. Scans the full grid
    once (along z) and then only the occupied slab."""
    z = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if z.size == 0:
        return None
    slab = mask[z[0] : z[-1] + 1]
    y = np.flatnonzero(slab.any(axis=(0, 2)))
    x = np.flatnonzero(slab.any(axis=(0, 1)))
    return slice(z[0], z[-1] + 1), slice(y[0], y[-1] + 1), slice(x[0], x[-1] + 1)


def _union_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...] | None:
    boxes = [box for box in (_bounding_box(a), _bounding_box(b)) if box is not None]
    if not boxes:
        return None
    return tuple(slice(min(box[i].start for box in boxes), max(box[i].stop for box in boxes)) for i in range(3))


def _neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """Code of every 2×2×2 neighbourhood, one per voxel corner (shape + 1 along each axis)."""
    padded = np.pad(mask, 1).view(np.uint8)
    n0, n1, n2 = (s + 1 for s in mask.shape)
    codes = np.zeros((n0, n1, n2), dtype=np.uint8)
    for corner in _CORNERS:
        a, b, c = corner
        codes |= padded[a : a + n0, b : b + n1, c : c + n2] << _bit(corner)
    return codes


@dataclass(frozen=True)
class Surface:
    """Surfels of one mask: their corner positions (boolean grid) and areas in mm²."""

    border: np.ndarray
    areas: np.ndarray


def _surface(mask: np.ndarray, spacing_mm) -> Surface:
    codes = _neighbour_codes(mask)
    border = (codes != 0) & (codes != 255)
    return Surface(border=border, areas=surfel_area_table(tuple(float(s) for s in spacing_mm))[codes[border]])


def _distances_to(surface: Surface, other: Surface, spacing_mm) -> np.ndarray:
    """Distance (mm) from each surfel of `surface` to the nearest surfel of `other`; inf if `other` has none."""
    if not other.border.any():
        return np.full(surface.areas.shape, math.inf)
    return ndimage.distance_transform_edt(~other.border, sampling=spacing_mm)[surface.border]


def _percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    """Surfel-area-weighted percentile: the smallest distance whose cumulative area share reaches percent."""
    if distances.size == 0:
        return math.inf
    order = np.lexsort((areas, distances))
    cumulative = np.cumsum(areas[order]) / areas.sum()
    index = min(int(np.searchsorted(cumulative, percent / 100.0)), distances.size - 1)
    return float(distances[order][index])


def _mean(distances: np.ndarray, areas: np.ndarray) -> float:
    return float(np.sum(distances * areas) / np.sum(areas)) if distances.size else math.inf


# ---------------------------------------------------------------------------------------- added path


def _boundary_2d(mask: np.ndarray) -> np.ndarray:
    """Per axial slice: inside pixels with an edge neighbour (4-connectivity) outside; holes count."""
    cross = np.zeros((1, 3, 3), dtype=bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    return mask & ~ndimage.binary_erosion(mask, structure=cross, border_value=0)


def added_path_length(before: np.ndarray, after: np.ndarray, spacing_mm, tolerances_mm=(0, 1)) -> dict[float, float]:
    """Vaassen et al. 2020: per axial slice, the length (mm) of AFTER's boundary pixels farther than the
    tolerance (in-plane) from every BEFORE boundary pixel, summed over slices; a pixel counts
    (row + column spacing) / 2."""
    _, sy, sx = spacing_mm
    drawn = _boundary_2d(after)
    kept = _boundary_2d(before)
    pixel_mm = (sy + sx) / 2
    if not drawn.any():
        return {float(t): 0.0 for t in tolerances_mm}
    if not kept.any():
        return {float(t): float(drawn.sum()) * pixel_mm for t in tolerances_mm}
    # Slices never mix: a z spacing far beyond any tolerance keeps each pixel's nearest point in its slice,
    # or beyond every tolerance when that slice of BEFORE has no boundary.
    distance = ndimage.distance_transform_edt(~kept, sampling=(1e9, sy, sx))[drawn]
    return {float(t): float(np.count_nonzero(distance > t)) * pixel_mm for t in tolerances_mm}


# ------------------------------------------------------------------------------------------- result


def _key(value: float) -> str:
    return f"{value:g}"


def _finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class CorrectionMetrics:
    """BEFORE → AFTER; distances in mm, volumes in cm³. Infinite distances mean exactly one mask is empty."""

    dice: float
    surface_dice: dict[float, float]
    hd95_mm: float
    hausdorff_mm: float
    msd_before_to_after_mm: float
    msd_after_to_before_mm: float
    msd_mm: float
    apl_mm: dict[float, float]
    volume_before_cc: float
    volume_after_cc: float
    volume_change_cc: float
    volume_change_relative: float | None
    edited_slices: int

    def as_dict(self) -> dict:
        """JSON-ready: tolerances as keys like "1" and "2.5", infinite distances as None."""
        return {
            "dice": self.dice,
            "surface_dice": {_key(t): v for t, v in self.surface_dice.items()},
            "hd95_mm": _finite(self.hd95_mm),
            "hausdorff_mm": _finite(self.hausdorff_mm),
            "msd_mm": _finite(self.msd_mm),
            "msd_before_to_after_mm": _finite(self.msd_before_to_after_mm),
            "msd_after_to_before_mm": _finite(self.msd_after_to_before_mm),
            "apl_mm": {_key(t): v for t, v in self.apl_mm.items()},
            "volume_before_cc": self.volume_before_cc,
            "volume_after_cc": self.volume_after_cc,
            "volume_change_cc": self.volume_change_cc,
            "volume_change_relative": self.volume_change_relative,
            "edited_slices": self.edited_slices,
        }


def _check(before: np.ndarray, after: np.ndarray, spacing_mm) -> tuple[np.ndarray, np.ndarray, tuple]:
    before, after = np.asarray(before), np.asarray(after)
    if before.ndim != 3 or before.shape != after.shape:
        raise ValueError(f"Masks must be 3-D and of one shape (z, y, x); got {before.shape} and {after.shape}.")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"Spacing must be three positive millimetre values (z, y, x); got {spacing_mm}.")
    return before.astype(bool, copy=False), after.astype(bool, copy=False), spacing


def compare(
    before: np.ndarray,
    after: np.ndarray,
    spacing_mm: tuple[float, float, float],
    tolerances_mm=(1, 2, 3),
    apl_tolerances_mm=(0, 1),
) -> CorrectionMetrics:
    """All correction metrics between BEFORE and AFTER, (z, y, x) masks on one grid with (sz, sy, sx) mm."""
    before, after, spacing = _check(before, after, spacing_mm)
    voxel_cc = spacing[0] * spacing[1] * spacing[2] / 1000.0
    box = _union_box(before, after)
    if box is None:  # nothing drawn before or after: no correction
        return CorrectionMetrics(
            dice=1.0, surface_dice={float(t): 1.0 for t in tolerances_mm}, hd95_mm=0.0, hausdorff_mm=0.0,
            msd_before_to_after_mm=0.0, msd_after_to_before_mm=0.0, msd_mm=0.0,
            apl_mm={float(t): 0.0 for t in apl_tolerances_mm}, volume_before_cc=0.0, volume_after_cc=0.0,
            volume_change_cc=0.0, volume_change_relative=None, edited_slices=0,
        )  # fmt: skip
    before, after = before[box], after[box]
    n_before, n_after = int(np.count_nonzero(before)), int(np.count_nonzero(after))
    n_both = int(np.count_nonzero(before & after))

    s_before, s_after = _surface(before, spacing), _surface(after, spacing)
    d_before = _distances_to(s_before, s_after, spacing)  # BEFORE's surfels → AFTER's surface
    d_after = _distances_to(s_after, s_before, spacing)
    total_area = s_before.areas.sum() + s_after.areas.sum()
    surface_dice = {
        float(t): float((s_before.areas[d_before <= t].sum() + s_after.areas[d_after <= t].sum()) / total_area)
        for t in tolerances_mm
    }
    msd_ba, msd_ab = _mean(d_before, s_before.areas), _mean(d_after, s_after.areas)
    hausdorff = max(
        float(d_before.max()) if d_before.size else math.inf, float(d_after.max()) if d_after.size else math.inf
    )
    volume_before, volume_after = n_before * voxel_cc, n_after * voxel_cc
    return CorrectionMetrics(
        dice=2.0 * n_both / (n_before + n_after),
        surface_dice=surface_dice,
        hd95_mm=max(_percentile(d_before, s_before.areas, 95), _percentile(d_after, s_after.areas, 95)),
        hausdorff_mm=hausdorff,
        msd_before_to_after_mm=msd_ba,
        msd_after_to_before_mm=msd_ab,
        msd_mm=(msd_ba + msd_ab) / 2,
        apl_mm=added_path_length(before, after, spacing, apl_tolerances_mm),
        volume_before_cc=volume_before,
        volume_after_cc=volume_after,
        volume_change_cc=volume_after - volume_before,
        volume_change_relative=(volume_after - volume_before) / volume_before if n_before else None,
        edited_slices=int(np.count_nonzero((before != after).any(axis=(1, 2)))),
    )
