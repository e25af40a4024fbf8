"""`manage.py contour_metrics` on phantom files: NIfTI, NRRD and RTSTRUCT forms, and refusals."""

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from scipy import ndimage

from imaging.contours.files import read_ct_folder
from imaging.contours.maskio import read_mask, write_mask
from imaging.geometry import grid_from_datasets
from imaging.phantom.writer import write_phantom


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("metrics")
    files = write_phantom(folder, seed=1003, rows=128, slices=40)
    grid, _ = grid_from_datasets(read_ct_folder(files.ct_dir))
    gtv = read_mask(files.gtv_nifti, grid)
    write_mask(folder / "eroded.nrrd", ndimage.binary_erosion(gtv), grid)
    return files, grid, gtv, folder


def metrics(*args) -> dict:
    out = StringIO()
    call_command("contour_metrics", *map(str, args), "--json", stdout=out)
    return json.loads(out.getvalue())


def test_a_mask_against_itself(phantom):
    files, grid, gtv, _ = phantom
    values = metrics(files.gtv_nifti, files.gtv_nifti)
    assert values["dice"] == 1.0 and values["surface_dice"] == {"1": 1.0, "2": 1.0, "3": 1.0}
    assert values["hd95_mm"] == values["hausdorff_mm"] == values["msd_mm"] == 0.0
    assert values["apl_mm"] == {"0": 0.0, "1": 0.0} and values["edited_slices"] == 0
    assert values["volume_before_cc"] == pytest.approx(gtv.sum() * np.prod(grid.spacing) / 1000)


def test_an_eroded_mask(phantom):
    files, *_, folder = phantom
    values = metrics(files.gtv_nifti, folder / "eroded.nrrd")
    assert 0 < values["dice"] < 1 and values["volume_after_cc"] < values["volume_before_cc"]
    assert values["apl_mm"]["0"] > 0 and values["hausdorff_mm"] > 0 and values["edited_slices"] > 0
    assert values["volume_change_cc"] == pytest.approx(values["volume_after_cc"] - values["volume_before_cc"])


def test_rtstruct_form_matches_the_nifti(phantom):
    files, *_ = phantom
    rtstruct = f"{files.rtstruct}:GTV@{files.ct_dir}"
    from_rtstruct = metrics(rtstruct, files.gtv_nifti)
    assert from_rtstruct["dice"] > 0.95 and from_rtstruct["volume_before_cc"] > 0
    assert metrics(rtstruct, rtstruct)["dice"] == 1.0


def test_table_output(phantom):
    files, *_ = phantom
    out = StringIO()
    call_command("contour_metrics", str(files.gtv_nifti), str(files.gtv_nifti), stdout=out)
    assert "surface_dice" in out.getvalue() and "apl_mm" in out.getvalue()


def test_refuses_masks_on_different_grids(phantom, tmp_path):
    files, *_ = phantom
    other = write_phantom(tmp_path / "other", seed=1004, rows=96, slices=30)
    with pytest.raises(CommandError, match="grid"):
        call_command("contour_metrics", str(files.gtv_nifti), str(other.gtv_nifti))
    with pytest.raises(CommandError, match="grid"):
        call_command("contour_metrics", f"{files.rtstruct}:GTV@{files.ct_dir}", str(other.gtv_nifti))


def test_refuses_bad_input(phantom, tmp_path):
    files, *_ = phantom
    with pytest.raises(CommandError, match="no such file"):
        call_command("contour_metrics", str(tmp_path / "missing.nii.gz"), str(files.gtv_nifti))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CommandError, match="unsupported"):
        call_command("contour_metrics", str(tmp_path / "notes.txt"), str(files.gtv_nifti))
    with pytest.raises(CommandError, match="ROI"):
        call_command("contour_metrics", f"{files.rtstruct}:PTV@{files.ct_dir}", str(files.gtv_nifti))
