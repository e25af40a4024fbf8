"""NIfTI/NRRD masks in the CT's patient space: round trips, axis conventions and geometry checks."""

import os

import nibabel as nib
import nrrd
import numpy as np
import pytest

from imaging.contours.maskio import MaskFileError, read_mask, write_mask
from imaging.geometry import grid_from_datasets

from .synthetic_ct import lesion_mask, make_ct_series

EXTENSIONS = ["nii", "nii.gz", "nrrd"]


@pytest.fixture(scope="module")
def grid():
    return grid_from_datasets(make_ct_series(rows=40, columns=56, slices=9, origin=(-101.5, 33.25, -7.5)))[0]


@pytest.fixture(scope="module")
def oblique_grid():
    orientation = (0.9541666, -0.2080757, 0.2151061, 0.2785886, 0.880128, -0.3843997)
    ct = make_ct_series(rows=20, columns=30, slices=5, pixel_spacing=(2.5, 3.5), orientation=orientation)
    return grid_from_datasets(ct)[0]


@pytest.fixture(scope="module")
def mask(grid):
    asymmetric = lesion_mask(grid.shape)
    asymmetric[0, 0, 1] = True  # a voxel that shows any axis swap or flip
    return asymmetric


@pytest.mark.parametrize("extension", EXTENSIONS)
def test_round_trip(tmp_path, grid, mask, extension):
    path = tmp_path / f"gtv.{extension}"
    write_mask(path, mask, grid)
    np.testing.assert_array_equal(read_mask(path, grid), mask)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


@pytest.mark.parametrize("extension", EXTENSIONS)
def test_oblique_round_trip(tmp_path, oblique_grid, extension):
    mask = np.random.default_rng(2).random(oblique_grid.shape) < 0.3
    path = tmp_path / f"gtv.{extension}"
    write_mask(path, mask, oblique_grid)
    np.testing.assert_array_equal(read_mask(path, oblique_grid), mask)


def test_nifti_is_ras_with_x_fastest(tmp_path, grid, mask):
    path = tmp_path / "gtv.nii.gz"
    write_mask(path, mask, grid)
    image = nib.load(path)
    data = np.asanyarray(image.dataobj)
    assert data.shape == grid.shape[::-1]
    k, j, i = np.argwhere(mask)[0]
    assert data[i, j, k] == 1
    # The voxel's NIfTI (RAS) position is its DICOM (LPS) position with x and y negated.
    lps = grid.index_to_patient([[i, j, k]])[0]
    ras = image.affine @ np.array([i, j, k, 1.0])
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)
    assert int(image.header["sform_code"]) == 1


def test_nrrd_is_lps_with_x_fastest(tmp_path, grid, mask):
    path = tmp_path / "gtv.nrrd"
    write_mask(path, mask, grid)
    data, header = nrrd.read(str(path))
    assert header["space"] == "left-posterior-superior"
    assert data.shape == grid.shape[::-1]
    k, j, i = np.argwhere(mask)[0]
    assert data[i, j, k] == 1
    position = np.asarray(header["space origin"]) + np.array([i, j, k]) @ np.asarray(header["space directions"])
    np.testing.assert_allclose(position, grid.index_to_patient([[i, j, k]])[0], atol=1e-6)


def test_flipped_and_permuted_storage_of_the_same_voxels_is_accepted(tmp_path, grid, mask):
    write_mask(tmp_path / "gtv.nii.gz", mask, grid)
    canonical = nib.as_closest_canonical(nib.load(tmp_path / "gtv.nii.gz"))  # RAS+: flips x and y
    data = np.asanyarray(canonical.dataobj).transpose(1, 0, 2)  # and store rows first
    affine = canonical.affine[:, [1, 0, 2, 3]]
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "reoriented.nii.gz")
    np.testing.assert_array_equal(read_mask(tmp_path / "reoriented.nii.gz", grid), mask)


def test_ras_nrrd_with_other_label_value_is_accepted(tmp_path, grid, mask):
    directions = grid.affine[:3, :3].T * np.array([-1, -1, 1])
    origin = grid.affine[:3, 3] * np.array([-1, -1, 1])
    header = {"space": "right-anterior-superior", "space directions": directions, "space origin": origin}
    nrrd.write(str(tmp_path / "ras.nrrd"), (mask.transpose(2, 1, 0) * 255).astype(np.uint8), header)
    np.testing.assert_array_equal(read_mask(tmp_path / "ras.nrrd", grid), mask)


@pytest.mark.parametrize("extension", EXTENSIONS)
def test_mask_on_another_grid_is_refused(tmp_path, grid, extension):
    shifted_ct = make_ct_series(rows=40, columns=56, slices=9, origin=(-101.5, 33.25, -7.5 + 0.01))
    shifted = grid_from_datasets(shifted_ct)[0]
    write_mask(tmp_path / f"shifted.{extension}", np.zeros(shifted.shape, dtype=bool), shifted)
    with pytest.raises(MaskFileError, match=r"0\.010 mm away"):
        read_mask(tmp_path / f"shifted.{extension}", grid)
    shorter = grid_from_datasets(make_ct_series(rows=40, columns=56, slices=8, origin=(-101.5, 33.25, -7.5)))[0]
    write_mask(tmp_path / f"shorter.{extension}", np.zeros(shorter.shape, dtype=bool), shorter)
    with pytest.raises(MaskFileError, match="56×40×8 voxels does not match the CT grid 56×40×9"):
        read_mask(tmp_path / f"shorter.{extension}", grid)
    finer = grid_from_datasets(make_ct_series(rows=40, columns=56, slices=9, pixel_spacing=(0.5, 0.5)))[0]
    write_mask(tmp_path / f"finer.{extension}", np.zeros(finer.shape, dtype=bool), finer)
    with pytest.raises(MaskFileError, match="orientation/spacing mismatch"):
        read_mask(tmp_path / f"finer.{extension}", grid)


def test_bad_files_are_refused(tmp_path, grid, mask):
    with pytest.raises(MaskFileError, match="unsupported mask file type"):
        write_mask(tmp_path / "gtv.mha", mask, grid)
    with pytest.raises(MaskFileError, match="unsupported mask file type"):
        read_mask(tmp_path / "gtv.png", grid)
    with pytest.raises(MaskFileError, match="no such file"):
        read_mask(tmp_path / "missing.nrrd", grid)
    with pytest.raises(MaskFileError, match="does not match the CT grid"):
        write_mask(tmp_path / "gtv.nrrd", mask[:, :, :-1], grid)
    (tmp_path / "junk.nii.gz").write_bytes(os.urandom(64))
    with pytest.raises(MaskFileError, match="not a readable NIfTI"):
        read_mask(tmp_path / "junk.nii.gz", grid)
    labels = mask.astype(np.uint8)
    labels[0, 0, 0] = 2
    image = nib.Nifti1Image(labels.transpose(2, 1, 0), np.diag([-1, -1, 1, 1]) @ grid.affine)
    image.set_sform(image.affine, code=1)
    nib.save(image, tmp_path / "labels.nii.gz")
    with pytest.raises(MaskFileError, match=r"several labels \(1, 2\)"):
        read_mask(tmp_path / "labels.nii.gz", grid)
    unoriented = nib.Nifti1Image(mask.astype(np.uint8).transpose(2, 1, 0), None)
    unoriented.header["sform_code"] = unoriented.header["qform_code"] = 0
    nib.save(unoriented, tmp_path / "unoriented.nii")
    with pytest.raises(MaskFileError, match="no patient-space orientation"):
        read_mask(tmp_path / "unoriented.nii", grid)
