"""Mask slice → closed planar polygons running on voxel edges.

Contours follow pixel borders (corners at ±0.5 of pixel centres) rather than joining pixel centres, so
rasterising them back with pixel-centre, even–odd inclusion (``rasterise.polygons_to_mask_slice``) gives
the same mask exactly: one-pixel objects, thin lines and holes survive. Foreground is read
4-connected: two pixels touching only at a corner belong to separate rings (or, for one object, the
ring turns back at the shared corner), which is how the even–odd rasteriser reads them anyway.
"""

import numpy as np

# Edge directions in (column, row) index space, rows increasing downwards. Each boundary edge is
# oriented with the foreground pixel on its right-hand side (clockwise on screen around an object).
_STEPS = np.array([(1, 0), (0, 1), (-1, 0), (0, -1)])  # 0: +x (top side), 1: +y (right), 2: -x (bottom), 3: -y (left)


def _boundary_edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All foreground/background pixel sides: start vertex (x, y) and direction per edge."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    xs, ys, dirs = [], [], []
    # (neighbour offset row, column; direction; start-vertex offset (dx, dy) relative to pixel (r, c))
    sides = (((-1, 0), 0, (0, 0)), ((0, 1), 1, (1, 0)), ((1, 0), 2, (1, 1)), ((0, -1), 3, (0, 1)))
    rows, cols = mask.shape
    for (dr, dc), direction, (dx, dy) in sides:
        neighbour = padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]
        r, c = np.nonzero(inner & ~neighbour)
        xs.append(c + dx)
        ys.append(r + dy)
        dirs.append(np.full(r.size, direction))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(dirs)


def mask_slice_to_polygons(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed rings of one slice as (N, 2) float arrays of (column, row) continuous index coordinates.

    Outer boundaries run clockwise on screen and holes anticlockwise; each hole, island-in-hole and
    separate lesion is its own ring. Only corner vertices are kept (collinear points dropped); rings are
    implicitly closed (the first vertex is not repeated).
    """
    mask = np.asarray(mask2d)
    if mask.ndim != 2:
        raise ValueError(f"A mask slice must be two-dimensional, got shape {mask.shape}.")
    mask = mask.astype(bool)
    if not mask.any():
        return []
    xs, ys, dirs = _boundary_edges(mask)
    width = mask.shape[1] + 1
    # Outgoing edge per (vertex, direction); a vertex has one outgoing edge, or two at a diagonal saddle.
    n_vertices = (mask.shape[0] + 1) * width
    outgoing = np.full((n_vertices, 4), -1, dtype=np.int64)
    outgoing[ys * width + xs, dirs] = np.arange(xs.size)
    end_x, end_y = xs + _STEPS[dirs, 0], ys + _STEPS[dirs, 1]
    ends = end_y * width + end_x
    # Prefer the right turn (towards the foreground): at a saddle this keeps the corner-touching pixels
    # apart (4-connectivity). Elsewhere only one candidate exists, so the order does not matter.
    following = outgoing[ends, (dirs + 1) % 4]
    for candidate in (dirs, (dirs + 3) % 4):
        missing = following < 0
        following[missing] = outgoing[ends[missing], candidate[missing]]
    following = following.tolist()
    corner = (dirs != dirs[np.asarray(following)]).tolist()  # edge e's end is a corner
    visited = bytearray(xs.size)
    rings = []
    for start in range(xs.size):
        if visited[start]:
            continue
        vertices = []
        edge = start
        while not visited[edge]:
            visited[edge] = 1
            nxt = following[edge]
            if corner[edge]:
                vertices.append(nxt)  # the next edge starts at a corner
            edge = nxt
        index = np.array(vertices)
        rings.append(np.column_stack([xs[index], ys[index]]).astype(float) - 0.5)
    return rings
