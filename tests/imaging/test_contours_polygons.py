"""Voxel-edge polygons and their rasterisation: exact round trips, 4-connectivity, sub-pixel vertices."""

import time

import numpy as np
import pytest

from imaging.contours.polygons import mask_slice_to_polygons
from imaging.contours.rasterise import polygons_to_mask_slice


def signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def brute_force_even_odd(rings, shape) -> np.ndarray:
    """Reference: for each pixel centre, count ring edges crossed by a ray towards +column (half-open in y)."""
    inside = np.zeros(shape, dtype=bool)
    for r in range(shape[0]):
        for c in range(shape[1]):
            crossings = 0
            for ring in rings:
                for (x0, y0), (x1, y1) in zip(ring, np.roll(ring, -1, axis=0), strict=True):
                    spans_row = (y0 <= r < y1) or (y1 <= r < y0)
                    if spans_row and x0 + (r - y0) / (y1 - y0) * (x1 - x0) > c:
                        crossings += 1
            inside[r, c] = crossings % 2 == 1
    return inside


def assert_round_trip(mask: np.ndarray) -> list[np.ndarray]:
    rings = mask_slice_to_polygons(mask)
    np.testing.assert_array_equal(polygons_to_mask_slice(rings, mask.shape), mask)
    for ring in rings:
        assert ring.shape[1] == 2 and len(ring) >= 4
        # Vertices lie on pixel corners (half-integer index coordinates) ...
        np.testing.assert_array_equal(ring % 1, np.full(ring.shape, 0.5))
        # ... every edge is axis-parallel, and no vertex sits in the middle of a straight run.
        step = np.roll(ring, -1, axis=0) - ring
        assert ((step[:, 0] == 0) ^ (step[:, 1] == 0)).all()
        turn = step[:, 0] * np.roll(step, 1, axis=0)[:, 1] - step[:, 1] * np.roll(step, 1, axis=0)[:, 0]
        assert (turn != 0).all()
    return rings


def test_random_masks_round_trip_exactly():
    rng = np.random.default_rng(20240611)
    for _ in range(400):
        shape = tuple(int(n) for n in rng.integers(1, 24, size=2))
        assert_round_trip(rng.random(shape) < rng.uniform(0.05, 0.95))


def test_random_blobs_with_holes_round_trip_exactly():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:48, :48]
    for _ in range(60):
        mask = np.zeros((48, 48), dtype=bool)
        for _ in range(rng.integers(1, 5)):
            cy, cx, radius = rng.uniform(5, 43), rng.uniform(5, 43), rng.uniform(1, 12)
            mask ^= (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        assert_round_trip(mask)


def test_empty_slice_has_no_rings():
    assert mask_slice_to_polygons(np.zeros((5, 5), dtype=bool)) == []
    assert not polygons_to_mask_slice([], (5, 5)).any()


def test_one_pixel_object_is_a_unit_square_on_its_edges():
    mask = np.zeros((4, 5), dtype=bool)
    mask[2, 3] = True
    (ring,) = assert_round_trip(mask)
    assert sorted(map(tuple, ring)) == [(2.5, 1.5), (2.5, 2.5), (3.5, 1.5), (3.5, 2.5)]


def test_diagonal_neighbours_are_separate_rings():
    mask = np.zeros((4, 4), dtype=bool)
    mask[1, 1] = mask[2, 2] = True  # touch only at the corner (2 - 0.5, 2 - 0.5)
    rings = assert_round_trip(mask)
    assert len(rings) == 2
    assert [abs(signed_area(r)) for r in rings] == [1.0, 1.0]
    mask = np.zeros((4, 4), dtype=bool)
    mask[1, 2] = mask[2, 1] = True  # the other diagonal
    assert len(assert_round_trip(mask)) == 2


def test_checkerboard_is_one_ring_per_pixel():
    mask = (np.indices((6, 7)).sum(axis=0) % 2).astype(bool)
    rings = assert_round_trip(mask)
    assert len(rings) == mask.sum()


def test_hole_is_its_own_ring_with_opposite_orientation():
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True
    mask[3, 3] = False
    outer, hole = sorted(assert_round_trip(mask), key=lambda r: -abs(signed_area(r)))
    assert abs(signed_area(outer)) == 25 and abs(signed_area(hole)) == 1
    assert np.sign(signed_area(outer)) == -np.sign(signed_area(hole))


def test_two_lesions_on_one_slice():
    mask = np.zeros((20, 30), dtype=bool)
    mask[2:8, 3:9] = True
    mask[10:18, 15:27] = True
    rings = assert_round_trip(mask)
    assert sorted(abs(signed_area(r)) for r in rings) == [36, 96]


def test_ring_in_ring_in_ring():
    yy, xx = np.mgrid[:41, :41]
    distance = np.maximum(abs(yy - 20), abs(xx - 20))
    mask = (distance <= 18) & ~((distance >= 12) & (distance <= 15)) & ~((distance >= 4) & (distance <= 7))
    rings = assert_round_trip(mask)
    assert len(rings) == 5  # outer, hole, island, hole, centre island
    # Even–odd: combining the rings by XOR gives the mask; the union of the interiors would not.
    union = np.zeros(mask.shape, dtype=bool)
    for ring in rings:
        union |= polygons_to_mask_slice([ring], mask.shape)
    assert union.sum() > mask.sum()


def test_diagonally_closed_annulus_round_trips():
    mask = np.zeros((6, 6), dtype=bool)
    mask[1, 1:4] = mask[1:4, 1] = mask[3, 1:3] = mask[2:3, 3] = True  # closed only through the corner at (3, 3)
    mask[2, 2] = False
    # One 4-connected object, so one ring; it passes the pinch corner twice instead of enclosing a hole.
    (ring,) = assert_round_trip(mask)
    assert sum(tuple(v) == (2.5, 2.5) for v in ring) == 2


def test_sub_pixel_vertices_match_brute_force_even_odd():
    rng = np.random.default_rng(3)
    for _ in range(40):
        rings = [rng.uniform(-2, 14, size=(int(rng.integers(3, 9)), 2)) for _ in range(rng.integers(1, 3))]
        np.testing.assert_array_equal(polygons_to_mask_slice(rings, (12, 13)), brute_force_even_odd(rings, (12, 13)))


def test_centre_on_an_edge_follows_half_open_rule():
    square = np.array([[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]])  # edges through pixel centres
    mask = polygons_to_mask_slice([square], (5, 5))
    expected = np.zeros((5, 5), dtype=bool)
    expected[1:3, 1:3] = True  # left and top borders inside, right and bottom outside: no double counting
    np.testing.assert_array_equal(mask, expected)


def test_polygons_outside_the_slice_are_clipped():
    ring = np.array([[-10.0, -10.0], [2.4, -10.0], [2.4, 1.6], [-10.0, 1.6]])
    mask = polygons_to_mask_slice([ring], (4, 4))
    expected = np.zeros((4, 4), dtype=bool)
    expected[:2, :3] = True
    np.testing.assert_array_equal(mask, expected)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="two-dimensional"):
        mask_slice_to_polygons(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        polygons_to_mask_slice([np.zeros((4, 3))], (4, 4))


def test_512_slice_is_fast():
    yy, xx = np.mgrid[:512, :512]
    mask = ((yy - 250) ** 2 + (xx - 230) ** 2 < 90**2) & ~((yy - 240) ** 2 + (xx - 220) ** 2 < 20**2)
    mask |= (yy - 400) ** 2 / 4 + (xx - 400) ** 2 < 30**2
    start = time.perf_counter()
    for _ in range(10):
        rings = mask_slice_to_polygons(mask)
        back = polygons_to_mask_slice(rings, mask.shape)
    assert time.perf_counter() - start < 2.0
    np.testing.assert_array_equal(back, mask)
