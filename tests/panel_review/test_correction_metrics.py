"""Correction metrics against DeepMind's surface-distance (randomised, anisotropic) and hand-computed cases."""

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from panel_review.correction_metrics import added_path_length, compare, surfel_area_table
from tests.panel_review.reference import surface_distance

SPACINGS = [(2.5, 0.98, 0.98), (3.0, 1.2, 0.8), (1.0, 1.0, 1.0), (0.7, 2.0, 1.3)]
SEEDS = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def reference():
    return surface_distance()


def blob(rng, shape=(18, 34, 30), smooth=2.0, level=0.6) -> np.ndarray:
    """A random irregular (often multi-part, sometimes holed) mask from thresholded smoothed noise."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), smooth)
    return field > level * field.std()


def pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """BEFORE and a corrected AFTER: the same blob with a part grown, a part cut and some slices redrawn."""
    rng = np.random.default_rng(seed)
    before = blob(rng)
    after = ndimage.binary_dilation(before) if seed % 2 else ndimage.binary_erosion(before)
    cut = int(rng.integers(5, 15))
    after[:, :cut] = before[:, :cut]  # this part left as it was
    after ^= blob(rng, smooth=1.5, level=1.8)  # small pieces added and removed
    return before, after


def reference_values(sd, before, after, spacing):
    distances = sd.compute_surface_distances(before, after, spacing)
    with np.errstate(invalid="ignore", divide="ignore"):  # its mean distance from an empty surface is 0/0
        msd = sd.compute_average_surface_distance(distances)
    return {
        "dice": sd.compute_dice_coefficient(before, after),
        "surface_dice": {t: sd.compute_surface_dice_at_tolerance(distances, t) for t in (1, 2, 3)},
        "hd95_mm": sd.compute_robust_hausdorff(distances, 95),
        "hausdorff_mm": sd.compute_robust_hausdorff(distances, 100),
        "msd": msd,
    }


@pytest.mark.parametrize("spacing", SPACINGS)
def test_surfel_areas_match_the_reference_table(reference, spacing):
    expected = reference.lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    np.testing.assert_allclose(surfel_area_table(spacing), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("seed", SEEDS)
def test_agrees_with_the_reference(reference, seed, spacing):
    before, after = pair(seed)
    assert before.any() and after.any() and (before != after).any()
    ours = compare(before, after, spacing)
    theirs = reference_values(reference, before, after, spacing)
    assert ours.dice == pytest.approx(theirs["dice"], abs=1e-6)
    for tolerance in (1, 2, 3):
        assert ours.surface_dice[tolerance] == pytest.approx(theirs["surface_dice"][tolerance], abs=1e-6)
    assert ours.hd95_mm == pytest.approx(theirs["hd95_mm"], abs=1e-6)
    assert ours.hausdorff_mm == pytest.approx(theirs["hausdorff_mm"], abs=1e-6)
    assert ours.msd_before_to_after_mm == pytest.approx(theirs["msd"][0], abs=1e-6)
    assert ours.msd_after_to_before_mm == pytest.approx(theirs["msd"][1], abs=1e-6)
    assert ours.msd_mm == pytest.approx(sum(theirs["msd"]) / 2, abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_agrees_with_the_reference_when_touching_the_grid_edge(reference, seed):
    """Masks that reach the array's faces: the reference pads the crop, we pad the array."""
    rng = np.random.default_rng(100 + seed)
    before, after = blob(rng, shape=(10, 16, 14), smooth=1.5, level=-0.3), blob(rng, shape=(10, 16, 14), level=-0.2)
    ours, theirs = compare(before, after, (2.0, 0.9, 1.1)), reference_values(reference, before, after, (2.0, 0.9, 1.1))
    assert ours.surface_dice[2] == pytest.approx(theirs["surface_dice"][2], abs=1e-6)
    assert ours.hd95_mm == pytest.approx(theirs["hd95_mm"], abs=1e-6)
    assert ours.hausdorff_mm == pytest.approx(theirs["hausdorff_mm"], abs=1e-6)


def test_one_empty_mask_follows_the_reference(reference):
    _, after = pair(0)
    before = np.zeros_like(after)
    ours, theirs = (
        compare(before, after, (2.5, 0.98, 0.98)),
        reference_values(reference, before, after, (2.5, 0.98, 0.98)),
    )
    assert ours.dice == theirs["dice"] == 0
    assert ours.surface_dice[1] == theirs["surface_dice"][1] == 0
    assert ours.hd95_mm == theirs["hd95_mm"] == math.inf
    assert ours.hausdorff_mm == theirs["hausdorff_mm"] == math.inf
    assert ours.msd_mm == ours.msd_before_to_after_mm == ours.msd_after_to_before_mm == math.inf
    assert ours.volume_change_relative is None
    assert ours.apl_mm[0] > 0
    values = ours.as_dict()
    assert values["hd95_mm"] is None and values["hausdorff_mm"] is None and values["msd_mm"] is None
    json.dumps(values, allow_nan=False)  # valid JSON: no NaN or Infinity
    deleted = compare(after, before, (2.5, 0.98, 0.98))
    assert deleted.apl_mm == {0.0: 0.0, 1.0: 0.0}  # nothing drawn
    assert deleted.volume_change_relative == -1.0


def test_both_empty_means_no_correction():
    empty = np.zeros((4, 5, 6), dtype=bool)
    metrics = compare(empty, empty, (2.5, 1.0, 1.0))
    assert metrics.dice == 1.0 and metrics.surface_dice == {1.0: 1.0, 2.0: 1.0, 3.0: 1.0}
    assert metrics.hd95_mm == metrics.hausdorff_mm == metrics.msd_mm == 0.0
    assert metrics.apl_mm == {0.0: 0.0, 1.0: 0.0} and metrics.edited_slices == 0
    assert metrics.volume_before_cc == metrics.volume_after_cc == 0.0 and metrics.volume_change_relative is None


def test_identical_masks():
    before, _ = pair(1)
    metrics = compare(before, before.copy(), (2.5, 0.98, 0.98))
    assert metrics.dice == 1.0 and all(v == 1.0 for v in metrics.surface_dice.values())
    assert metrics.hd95_mm == metrics.hausdorff_mm == metrics.msd_mm == 0.0
    assert metrics.apl_mm == {0.0: 0.0, 1.0: 0.0} and metrics.edited_slices == 0 and metrics.volume_change_cc == 0


@pytest.mark.parametrize("offset", [(0, 0, 0), (37, 120, 300), (142, 432, 470)])
def test_cropping_to_the_masks_does_not_change_results(offset):
    before, after = pair(2)
    small = compare(before, after, (2.5, 0.98, 0.98))
    big_before, big_after = (np.zeros((160, 466, 500), dtype=bool) for _ in range(2))
    region = tuple(slice(o, o + s) for o, s in zip(offset, before.shape, strict=True))
    big_before[region], big_after[region] = before, after
    big = compare(big_before, big_after, (2.5, 0.98, 0.98))
    assert big == small


# -------------------------------------------------------------------------------- hand-computed cases


def square(mask, z, top, left, size, value=True):
    mask[z, top : top + size, left : left + size] = value
    return mask


def grid(slices=3):
    return np.zeros((slices, 30, 30), dtype=bool)


def test_volumes_and_edited_slices():
    before = square(square(grid(4), 0, 5, 5, 10), 1, 5, 5, 10)  # 200 voxels
    after = square(square(square(grid(4), 0, 5, 5, 10), 1, 5, 5, 11), 3, 0, 0, 2)  # 100 + 121 + 4
    metrics = compare(before, after, (2.0, 1.0, 0.5))
    assert metrics.volume_before_cc == pytest.approx(200 * 1e-3)
    assert metrics.volume_after_cc == pytest.approx(225 * 1e-3)
    assert metrics.volume_change_cc == pytest.approx(25 * 1e-3)
    assert metrics.volume_change_relative == pytest.approx(0.125)
    assert metrics.edited_slices == 2  # slices 1 and 3
    assert metrics.dice == pytest.approx(2 * 200 / 425)


def apl(before, after, spacing=(2.5, 1.0, 1.0)):
    return added_path_length(before, after, spacing, (0, 1))


def test_apl_is_zero_for_the_same_contour():
    mask = square(grid(), 1, 5, 5, 6)
    assert apl(mask, mask.copy()) == {0.0: 0.0, 1.0: 0.0}


def test_apl_counts_the_whole_contour_drawn_from_nothing():
    after = square(grid(), 1, 5, 5, 5)  # 16 boundary pixels
    assert apl(grid(), after, (3.0, 0.8, 1.2)) == {0.0: pytest.approx(16.0), 1.0: pytest.approx(16.0)}


def test_apl_of_a_hole_cut_into_a_square():
    full = square(grid(), 1, 5, 5, 9)  # outer boundary 32 pixels
    holed = square(full.copy(), 1, 8, 8, 3, False)  # the hole's boundary: 12 pixels, 2 pixels from the outside
    assert apl(full, holed) == {0.0: 12.0, 1.0: 12.0}
    assert apl(holed, full) == {0.0: 0.0, 1.0: 0.0}  # filling the hole adds no path


def test_apl_with_two_contours_on_a_slice():
    one = square(grid(), 1, 2, 2, 4)
    two = square(one.copy(), 1, 20, 20, 4)  # a second 4×4 square: 12 boundary pixels
    assert apl(one, two) == {0.0: 12.0, 1.0: 12.0}
    assert apl(two, one) == {0.0: 0.0, 1.0: 0.0}


def test_apl_of_a_one_pixel_shift_depends_on_the_tolerance_and_the_axis():
    before = square(grid(), 1, 10, 10, 6)
    right = square(grid(), 1, 10, 11, 6)  # 10 of its 20 boundary pixels leave BEFORE's boundary
    down = square(grid(), 1, 11, 10, 6)
    spacing = (2.5, 0.8, 1.2)  # a pixel counts (0.8 + 1.2) / 2 = 1 mm
    # 1.2 mm sideways is beyond 1 mm, except for the two ends of the new left edge, 0.8 mm below/above
    # BEFORE's top and bottom rows.
    assert apl(before, right, spacing) == {0.0: 10.0, 1.0: 8.0}
    assert apl(before, down, spacing) == {0.0: 10.0, 1.0: 0.0}  # 0.8 mm apart: within 1 mm
    assert apl(before, right, (2.5, 0.98, 0.98)) == {0.0: pytest.approx(9.8), 1.0: 0.0}


def test_apl_sums_over_slices_and_ignores_other_slices():
    before = square(grid(), 0, 10, 10, 6)
    after = square(square(grid(), 0, 10, 10, 6), 2, 10, 10, 6)  # slice 2 drawn anew: 20 pixels
    assert apl(before, after) == {0.0: 20.0, 1.0: 20.0}
    assert compare(before, after, (2.5, 1.0, 1.0)).apl_mm == {0.0: 20.0, 1.0: 20.0}


def test_as_dict_uses_the_command_keys():
    before, after = pair(3)
    values = compare(before, after, (2.5, 0.98, 0.98)).as_dict()
    assert set(values["surface_dice"]) == {"1", "2", "3"} and set(values["apl_mm"]) == {"0", "1"}
    for key in ("dice", "hd95_mm", "hausdorff_mm", "msd_mm", "volume_before_cc", "volume_after_cc", "edited_slices"):
        assert key in values
    json.dumps(values, allow_nan=False)


def test_refuses_masks_of_different_shapes_or_bad_spacing():
    with pytest.raises(ValueError, match="one shape"):
        compare(grid(3), grid(4), (1, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        compare(grid(), grid(), (0, 1, 1))
