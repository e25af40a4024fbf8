"""Shape-based interpolation: morphs outlines across gaps, fills only background, fast on a full CT grid."""

import time

import numpy as np
import pytest

from delineation.interpolation import interpolate_segment


def disc(shape_yx, centre, radius_mm, spacing_yx=(1.0, 1.0)) -> np.ndarray:
    y, x = np.ogrid[: shape_yx[0], : shape_yx[1]]
    return ((y - centre[0]) * spacing_yx[0]) ** 2 + ((x - centre[1]) * spacing_yx[1]) ** 2 <= radius_mm**2


def test_discs_morph_into_intermediate_discs():
    labels = np.zeros((11, 80, 80), np.uint8)
    labels[0][disc((80, 80), (40, 40), 10)] = 1
    labels[10][disc((80, 80), (40, 40), 20)] = 1
    result = interpolate_segment(labels, 1)
    assert result is not labels and not labels[1:10].any()  # the input is left alone
    assert np.array_equal(result[[0, 10]], labels[[0, 10]])
    middle = np.count_nonzero(result[5] == 1)
    assert middle == pytest.approx(np.pi * 15**2, rel=0.1)
    areas = [np.count_nonzero(result[z]) for z in range(11)]
    assert areas == sorted(areas)  # grows monotonically from the small disc to the big one


def test_in_plane_spacing_is_in_mm():
    spacing = (2.5, 0.5, 1.0)  # anisotropic pixels: the discs are ellipses in voxels
    labels = np.zeros((5, 100, 60), np.uint8)
    labels[0][disc((100, 60), (50, 30), 10, spacing[1:])] = 1
    labels[4][disc((100, 60), (50, 30), 20, spacing[1:])] = 1
    result = interpolate_segment(labels, 1, spacing_zyx=spacing)
    middle_mm2 = np.count_nonzero(result[2] == 1) * spacing[1] * spacing[2]
    assert middle_mm2 == pytest.approx(np.pi * 15**2, rel=0.1)


def test_adjacent_key_slices_and_a_single_key_slice_change_nothing():
    labels = np.zeros((6, 30, 30), np.uint8)
    labels[2][disc((30, 30), (15, 15), 5)] = 1
    assert np.array_equal(interpolate_segment(labels, 1), labels)
    labels[3][disc((30, 30), (15, 15), 8)] = 1
    assert np.array_equal(interpolate_segment(labels, 1), labels)
    assert np.array_equal(interpolate_segment(labels, 2), labels)  # absent segment


def test_other_segments_are_never_overwritten():
    labels = np.zeros((9, 40, 40), np.uint8)
    labels[0][disc((40, 40), (20, 20), 10)] = 1
    labels[8][disc((40, 40), (20, 20), 10)] = 1
    labels[4, 15:25, 20:30] = 2
    result = interpolate_segment(labels, 1)
    assert np.array_equal(result == 2, labels == 2)
    assert np.count_nonzero(result[4] == 1) == np.count_nonzero(disc((40, 40), (20, 20), 10) & (labels[4] == 0))


def test_only_gaps_between_key_slices_are_filled():
    labels = np.zeros((12, 30, 30), np.uint8)
    for z in (2, 5, 9):
        labels[z][disc((30, 30), (15, 15), 6)] = 1
    result = interpolate_segment(labels, 1)
    assert not result[[0, 1, 10, 11]].any()
    assert all(np.array_equal(result[z] == 1, labels[2] == 1) for z in range(2, 10))  # equal discs stay equal


def test_a_shape_at_the_edge_of_the_slice():
    labels = np.zeros((3, 20, 20), np.uint8)
    labels[0, :10, :10] = 1
    labels[2, :10, :10] = 1
    assert np.array_equal(interpolate_segment(labels, 1)[1], labels[0])


def test_gtv_on_a_full_ct_grid_within_a_second():
    labels = np.zeros((150, 512, 512), np.uint8)
    for z, radius in zip(range(60, 91, 5), (8, 15, 20, 24, 20, 15, 8), strict=True):
        labels[z][disc((512, 512), (250, 260), radius, (0.98, 0.98))] = 1
    labels[70:80, 300:330, 200:220] = 2
    start = time.perf_counter()
    result = interpolate_segment(labels, 1, spacing_zyx=(2.5, 0.98, 0.98))
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert np.all((result[61:90] == 1).any(axis=(1, 2)))
    assert np.array_equal(result == 2, labels == 2)
