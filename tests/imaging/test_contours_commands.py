"""The rtstruct_to_mask and mask_to_rtstruct management commands, end to end on files."""

import io

import numpy as np
import pydicom
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from imaging.contours.maskio import read_mask, write_mask
from imaging.contours.rtstruct import list_roi_names, rtstruct_to_mask
from imaging.geometry import grid_from_datasets

from .synthetic_ct import lesion_mask, make_ct_series, write_ct_series


@pytest.fixture
def case(tmp_path):
    ct = make_ct_series(rows=32, columns=40, slices=10, origin=(-60.0, 14.5, 210.0))
    write_ct_series(ct, tmp_path / "ct")
    grid, _ = grid_from_datasets(ct)
    return tmp_path, ct, grid


def test_mask_to_rtstruct_then_back_to_mask(case):
    folder, ct, grid = case
    gtv = lesion_mask(grid.shape)
    write_mask(folder / "gtv.nii.gz", gtv, grid)
    out = io.StringIO()
    call_command("mask_to_rtstruct", folder / "gtv.nii.gz", folder / "ct", folder / "rs.dcm", roi="GTV", stdout=out)
    assert "Wrote" in out.getvalue()
    structure_set = pydicom.dcmread(folder / "rs.dcm")
    assert list_roi_names(structure_set) == ["GTV"]
    np.testing.assert_array_equal(rtstruct_to_mask(structure_set, ct, "GTV"), gtv)
    # The structure set may sit next to the CT, as in exported patient folders.
    (folder / "ct" / "rs.dcm").write_bytes((folder / "rs.dcm").read_bytes())
    for name in ("back.nrrd", "back.nii"):
        call_command(
            "rtstruct_to_mask", folder / "rs.dcm", folder / "ct", folder / name, roi="GTV", stdout=io.StringIO()
        )
        np.testing.assert_array_equal(read_mask(folder / name, grid), gtv)
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_bad_inputs_give_command_errors_and_no_output(case):
    folder, _, grid = case
    write_mask(folder / "gtv.nrrd", lesion_mask(grid.shape), grid)
    call_command(
        "mask_to_rtstruct", folder / "gtv.nrrd", folder / "ct", folder / "rs.dcm", roi="GTV", stdout=io.StringIO()
    )

    with pytest.raises(CommandError, match="ROI 'CTV' is not in the structure set; available ROIs: 'GTV'"):
        call_command("rtstruct_to_mask", folder / "rs.dcm", folder / "ct", folder / "ctv.nrrd", roi="CTV")
    assert not (folder / "ctv.nrrd").exists()

    with pytest.raises(CommandError, match="unsupported mask file type"):
        call_command("rtstruct_to_mask", folder / "rs.dcm", folder / "ct", folder / "gtv.png", roi="GTV")

    (folder / "not_dicom.dcm").write_text("hello")
    with pytest.raises(CommandError, match="not a readable DICOM file"):
        call_command("rtstruct_to_mask", folder / "not_dicom.dcm", folder / "ct", folder / "x.nrrd", roi="GTV")

    other = grid_from_datasets(make_ct_series(rows=32, columns=40, slices=9, origin=(-60.0, 14.5, 210.0)))[0]
    write_mask(folder / "other.nrrd", np.zeros(other.shape, dtype=bool), other)
    with pytest.raises(CommandError, match="does not match the CT grid"):
        call_command("mask_to_rtstruct", folder / "other.nrrd", folder / "ct", folder / "rs2.dcm", roi="GTV")
    assert not (folder / "rs2.dcm").exists()

    with pytest.raises(CommandError, match="name it"):
        call_command("mask_to_rtstruct", folder / "gtv.nrrd", folder / "ct", folder / "rs.nii", roi="GTV")
    (folder / "no_ct").mkdir()
    (folder / "no_ct" / "rs.dcm").write_bytes((folder / "rs.dcm").read_bytes())
    with pytest.raises(CommandError, match="holds no CT images"):
        call_command("mask_to_rtstruct", folder / "gtv.nrrd", folder / "no_ct", folder / "rs3.dcm", roi="GTV")
    with pytest.raises(CommandError, match="not a readable DICOM file"):
        call_command("mask_to_rtstruct", folder / "gtv.nrrd", folder, folder / "rs3.dcm", roi="GTV")
    with pytest.raises(CommandError, match="--color"):
        call_command("mask_to_rtstruct", folder / "gtv.nrrd", folder / "ct", folder / "rs4.dcm", roi="GTV", color="red")
