"""Preprocessing geometry: body crop, model grid, normalisation, and the round trip back to the CT grid."""

import numpy as np
import pytest

from imaging.geometry import Grid
from inference.phantom_cases import phantom_case
from inference.postprocess import dice, keep_components
from inference.preprocess import body_box, mask_to_model_grid, normalise, prepare, to_ct_grid

CARD = {
    "input_channels": ["CT", "PET_SUV"],
    "target_spacing_mm": [3.0, 2.0, 2.0],
    "normalisation": {
        "CT": {"clip": [-200.0, 300.0], "subtract": 50.0, "divide": 250.0},
        "PET_SUV": {"clip": [0.0, 15.0], "subtract": 0.0, "divide": 15.0},
    },
    "body_crop": {"ct_threshold_hu": -500.0, "margin_mm": 10.0},
}
CENTRE = np.array([12.0, -8.0, 20.0])  # LPS mm of the synthetic lesion


def grid(shape, spacing, origin, flip_x=False) -> Grid:
    affine = np.eye(4)
    affine[:3, :3] = np.diag([spacing[2] * (-1 if flip_x else 1), spacing[1], spacing[0]])
    affine[:3, 3] = origin
    return Grid(shape=shape, affine=affine, frame_of_reference_uid="1.2.3", study_instance_uid="",
                series_instance_uid="", sop_instance_uids=())  # fmt: skip


def patient_coordinates(g: Grid) -> np.ndarray:
    """(z, y, x, 3) LPS mm of every voxel centre."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in g.shape), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).reshape(-1, 3)
    return g.index_to_patient(ijk).reshape(*g.shape, 3)


def synthetic_study(flip_x: bool):
    """A water cylinder in air with a 15 mm lesion at CENTRE: hot on PET, +30 HU on CT, on unrelated grids."""
    ct_grid = grid((48, 110, 120), (2.5, 1.1, 1.1), (-60.0 if not flip_x else 70.0, -70.0, -40.0), flip_x)
    xyz = patient_coordinates(ct_grid)
    inside_body = np.hypot(xyz[..., 0] / 55, xyz[..., 1] / 45) < 1
    lesion = np.linalg.norm(xyz - CENTRE, axis=-1) < 15
    hu = np.where(inside_body, 40.0, -1000.0) + 30.0 * lesion
    pet_grid = grid((36, 40, 40), (3.27, 4.1, 4.1), (-78.0, -81.0, -47.0))
    pet_xyz = patient_coordinates(pet_grid)
    suv = np.where(np.hypot(pet_xyz[..., 0] / 55, pet_xyz[..., 1] / 45) < 1, 1.0, 0.0)
    suv = suv + 9.0 * np.exp(-0.5 * (np.linalg.norm(pet_xyz - CENTRE, axis=-1) / 6.0) ** 2)
    return hu.astype(np.float32), ct_grid, suv.astype(np.float32), pet_grid, lesion


@pytest.mark.parametrize("flip_x", [False, True])
def test_model_grid_has_card_spacing_ct_axes_and_covers_the_body(flip_x):
    hu, ct_grid, suv, pet_grid, _ = synthetic_study(flip_x)
    model_input = prepare(hu, ct_grid, suv, pet_grid, CARD)
    g = model_input.grid
    assert g.spacing == pytest.approx((3.0, 2.0, 2.0))
    directions = g.affine[:3, :3] / np.linalg.norm(g.affine[:3, :3], axis=0)
    assert directions == pytest.approx(ct_grid.affine[:3, :3] / np.linalg.norm(ct_grid.affine[:3, :3], axis=0))
    assert model_input.image.shape == (2, *g.shape) and model_input.image.dtype == np.float32
    box = model_input.ct_box
    corners = np.array(
        [[box[2].start, box[1].start, box[0].start], [box[2].stop - 1, box[1].stop - 1, box[0].stop - 1]]
    )
    inside = g.patient_to_index(ct_grid.index_to_patient(corners))
    assert (inside >= -0.5 - 1e-6).all() and (inside <= np.array(g.shape)[::-1] - 0.5 + 1e-6).all()


@pytest.mark.parametrize("flip_x", [False, True])
def test_pet_and_ct_land_where_they_are_in_patient_space(flip_x):
    hu, ct_grid, suv, pet_grid, _ = synthetic_study(flip_x)
    model_input = prepare(hu, ct_grid, suv, pet_grid, CARD)
    pet = model_input.image[1]
    hot = np.argwhere(pet > 0.5 * pet.max())
    weights = pet[tuple(hot.T)]
    centroid = (hot * weights[:, None]).sum(axis=0) / weights.sum()  # (z, y, x)
    assert model_input.grid.index_to_patient(centroid[::-1][None])[0] == pytest.approx(CENTRE, abs=1.0)
    ct = model_input.image[0]
    centre_index = np.round(model_input.grid.patient_to_index(CENTRE[None])[0][::-1]).astype(int)
    assert ct[tuple(centre_index)] == pytest.approx((70 - 50) / 250, abs=0.02)  # lesion HU 70, normalised
    assert ct[0, 0, 0] == pytest.approx(-1.0)  # air in the margin


@pytest.mark.parametrize("flip_x", [False, True])
def test_mask_to_model_grid_and_back_keeps_the_mask(flip_x):
    hu, ct_grid, suv, pet_grid, lesion = synthetic_study(flip_x)
    model_input = prepare(hu, ct_grid, suv, pet_grid, CARD)
    back = to_ct_grid(mask_to_model_grid(lesion, ct_grid, model_input), model_input, ct_grid) >= 0.5
    assert dice(back, lesion) >= 0.95


def test_phantom_gtv_round_trip_keeps_dice_above_095():
    case = phantom_case(1001, rows=256, slices=48)
    model_input = prepare(case.hu, case.ct_grid, case.suv, case.pet_grid, CARD)
    fraction = mask_to_model_grid(case.gtv, case.ct_grid, model_input)
    back = to_ct_grid(fraction, model_input, case.ct_grid) >= 0.5
    assert dice(back, case.gtv) >= 0.95


def test_body_box_trims_air_to_the_margin():
    hu = np.full((20, 50, 60), -1000.0)
    hu[5:15, 10:30, 20:40] = 0
    assert body_box(hu, (2.0, 1.0, 1.0), -500, 4.0) == (slice(3, 17), slice(6, 34), slice(16, 44))
    assert body_box(np.full((4, 5, 6), -1000.0), (1, 1, 1), -500, 4.0) == (slice(0, 4), slice(0, 5), slice(0, 6))


def test_normalise_clips_then_scales():
    rule = CARD["normalisation"]["CT"]
    assert normalise(np.array([-1000.0, 50.0, 300.0, 2000.0]), rule) == pytest.approx([-1.0, 0.0, 1.0, 1.0])


def test_keep_components_drops_small_and_surplus_components():
    mask = np.zeros((20, 40, 40), dtype=bool)
    mask[2:8, 2:12, 2:12] = True  # 600 voxels
    mask[10:14, 20:30, 20:30] = True  # 400
    mask[15:17, 35:38, 35:38] = True  # 18: below 0.05 ml at 1 mm³
    kept = keep_components(mask, (1.0, 1.0, 1.0), max_components=3, min_component_ml=0.05)
    assert kept.sum() == 1000
    assert keep_components(mask, (1.0, 1.0, 1.0), max_components=1, min_component_ml=0.0).sum() == 600
