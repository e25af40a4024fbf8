"""Volumes from slice series (modality LUT per slice, SUV) and resampling between grids through patient space."""

import datetime as dt
import random

import numpy as np
import pytest

from imaging.dicom.suv import suv_bw_factor
from imaging.dicom.volume import ResampleError, load_suv_volume, load_volume, resample
from imaging.geometry import Grid
from tests.imaging.synthetic_pet import (
    F18_HALF_LIFE_S,
    INJECTED_DOSE_BQ,
    PATIENT_WEIGHT_KG,
    ct_series,
    pet_series,
)

FRAME = "1.2.826.0.1.3680043.8.498.77"


def grid(shape, origin, spacing, orientation=(1, 0, 0, 0, 1, 0), frame=FRAME) -> Grid:
    """A Grid built directly: spacing is (slice, row, column) mm, orientation the DICOM row/column cosines."""
    row_dir, col_dir = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * spacing[2]
    affine[:3, 1] = col_dir * spacing[1]
    affine[:3, 2] = np.cross(row_dir, col_dir) * spacing[0]
    affine[:3, 3] = origin
    return Grid(
        shape=tuple(shape),
        affine=affine,
        frame_of_reference_uid=frame,
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.4",
        sop_instance_uids=(),
    )


def patient_coordinates(g: Grid) -> np.ndarray:
    """(z, y, x, 3) LPS mm of every voxel centre."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in g.shape), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).reshape(-1, 3)
    return g.index_to_patient(ijk).reshape(*g.shape, 3)


def linear(xyz: np.ndarray) -> np.ndarray:
    return 2.0 * xyz[..., 0] - 3.0 * xyz[..., 1] + 0.5 * xyz[..., 2] + 7.0


# Loading


def test_ct_volume_applies_rescale_and_sorts_slices():
    stored = np.random.default_rng(1).integers(-1000, 3000, size=(5, 6, 7)).astype(np.int16)
    datasets = ct_series(stored, intercept=-1024.0, slope=1.0)
    shuffled = datasets[:]
    random.Random(3).shuffle(shuffled)
    volume = load_volume(shuffled)
    assert volume.array.dtype == np.float32
    assert volume.array.shape == (5, 6, 7)
    np.testing.assert_array_equal(volume.array, stored.astype(np.float32) - 1024.0)
    assert volume.grid.sop_instance_uids == tuple(ds.SOPInstanceUID for ds in datasets)


def test_rescale_slope_is_honoured_per_slice():
    stored = np.full((3, 4, 5), 1000, dtype=np.uint16)
    slopes = [0.5, 2.0, 0.125]
    volume = load_volume(pet_series(stored, slopes=slopes))
    for k, slope in enumerate(slopes):
        np.testing.assert_array_equal(volume.array[k], np.full((4, 5), 1000 * slope, dtype=np.float32))


def test_suv_volume_uses_each_slice_slope_and_the_decayed_dose():
    stored = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5) * 50 + 100
    slopes = [0.75, 1.5, 3.0]
    datasets = pet_series(stored, slopes=slopes)
    volume = load_suv_volume(datasets)
    elapsed = (dt.datetime(2024, 3, 12, 10, 7, 30) - dt.datetime(2024, 3, 12, 9, 5)).total_seconds()
    factor = PATIENT_WEIGHT_KG * 1000.0 / (INJECTED_DOSE_BQ * 2.0 ** (-elapsed / F18_HALF_LIFE_S))
    expected = stored * np.asarray(slopes)[:, None, None] * factor
    np.testing.assert_allclose(volume.array, expected, rtol=1e-6)


def test_suv_volume_of_a_post_processed_series_uses_the_earliest_acquisition():
    datasets = pet_series(series_time="120000", acquisition_times=["100900", "100730", "101500"])
    volume = load_suv_volume(datasets)
    scan = dt.datetime(2024, 3, 12, 10, 7, 30)
    first = datasets[0]
    stored = first.pixel_array * float(first.RescaleSlope)
    np.testing.assert_allclose(volume.array[0], stored * suv_bw_factor(first, earliest_acquisition=scan), rtol=1e-6)


# Resampling


def test_identity_resample_is_exact():
    source = grid((4, 5, 6), origin=(-10.0, 20.0, -30.0), spacing=(2.5, 0.98, 0.98))
    values = np.random.default_rng(2).normal(size=source.shape).astype(np.float32)
    for order in (0, 1, 3):
        np.testing.assert_array_equal(resample(values, source, source, order=order), values)


def test_whole_voxel_shift_is_exact_and_outside_is_filled():
    source = grid((4, 5, 6), origin=(0.0, 0.0, 0.0), spacing=(2.0, 1.0, 1.0))
    target = grid((4, 5, 6), origin=(2.0, 1.0, 4.0), spacing=(2.0, 1.0, 1.0))  # +2 columns, +1 row, +2 slices
    values = np.arange(np.prod(source.shape), dtype=np.float32).reshape(source.shape)
    result = resample(values, source, target, order=1, fill=-1.0)
    np.testing.assert_array_equal(result[:2, :4, :4], values[2:, 1:, 2:])
    assert (result[2:] == -1.0).all() and (result[:, 4:] == -1.0).all() and (result[:, :, 4:] == -1.0).all()


@pytest.mark.parametrize(
    ("pet_orientation", "pet_origin"),
    [
        ((1, 0, 0, 0, 1, 0), (-60.0, -58.0, -21.0)),  # axial
        ((0, 1, 0, -1, 0, 0), (58.0, -60.0, -21.0)),  # axial, rows and columns turned by 90° about the body axis
    ],
)
def test_linear_function_survives_resampling_from_a_coarse_pet_grid_onto_a_ct_grid(pet_orientation, pet_origin):
    pet = grid((14, 30, 30), origin=pet_origin, spacing=(3.27, 4.07, 4.07), orientation=pet_orientation)
    ct = grid((12, 40, 44), origin=(-41.3, -37.9, -13.4), spacing=(2.5, 1.953, 1.953))
    on_pet = linear(patient_coordinates(pet)).astype(np.float32)
    result = resample(on_pet, pet, ct, order=1, fill=np.nan)
    expected = linear(patient_coordinates(ct))
    source_index = pet.patient_to_index(patient_coordinates(ct).reshape(-1, 3)).reshape(*ct.shape, 3)
    upper = np.array(pet.shape[::-1]) - 1
    inside = ((source_index >= 0) & (source_index <= upper)).all(axis=-1)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(result[inside], expected[inside], atol=1e-3, rtol=1e-5)
    assert np.isnan(result[~inside]).all()


def test_nearest_neighbour_keeps_a_boolean_mask_boolean():
    source = grid((6, 6, 6), origin=(0.0, 0.0, 0.0), spacing=(2.0, 2.0, 2.0))
    target = grid((12, 12, 12), origin=(-0.5, -0.5, -0.5), spacing=(1.0, 1.0, 1.0))
    mask = np.zeros(source.shape, dtype=bool)
    mask[2:4, 2:4, 2:4] = True
    result = resample(mask, source, target, order=0)
    assert result.dtype == bool
    assert result[6, 6, 6] and not result[0, 0, 0]
    assert result.sum() == mask.sum() * 8  # each 2 mm voxel becomes 2×2×2 voxels of 1 mm


def test_resampling_refuses_different_frames_of_reference_and_wrong_shapes():
    source = grid((2, 3, 4), origin=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 1.0))
    other_frame = grid((2, 3, 4), origin=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 1.0), frame="1.2.826.0.1.3680043.8.498.78")
    with pytest.raises(ResampleError, match="FrameOfReferenceUID differs"):
        resample(np.zeros(source.shape), source, other_frame)
    with pytest.raises(ResampleError, match="shape"):
        resample(np.zeros((3, 3, 4)), source, source)


def test_pet_series_onto_ct_series_end_to_end():
    ct = load_volume(ct_series(np.zeros((6, 20, 22), dtype=np.int16), pixel_spacing=(1.5, 1.5), slice_spacing=2.0))
    pet_grid = load_volume(pet_series(np.zeros((4, 10, 12), dtype=np.uint16))).grid
    values = linear(patient_coordinates(pet_grid)).astype(np.float32)
    result = resample(values, pet_grid, ct.grid, fill=np.nan)
    inside = ~np.isnan(result)
    assert inside.any()
    np.testing.assert_allclose(result[inside], linear(patient_coordinates(ct.grid))[inside], atol=1e-3)
