"""Acceptance on phantom GTVs: mask → RTSTRUCT → mask keeps Dice ≥ 0.99, plastimatch agrees ≥ 0.98,
and the exported (re-identified) RTSTRUCT and SEG pass dciodvfy."""

import re
import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from imaging.contours.maskio import read_mask
from imaging.contours.rtstruct import mask_to_rtstruct, rtstruct_to_mask
from imaging.contours.seg import mask_to_seg, probability_to_seg
from imaging.geometry import grid_from_datasets
from imaging.phantom.writer import write_phantom

from .test_contours_plastimatch import plastimatch_masks


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module", params=[4, 7, 12])
def phantom(request, tmp_path_factory):
    files = write_phantom(tmp_path_factory.mktemp(f"gtv{request.param}"), seed=request.param, rows=256, slices=60)
    ct = [pydicom.dcmread(p) for p in sorted(files.ct_dir.glob("*.dcm"))]
    grid, ordered = grid_from_datasets(ct)
    return files, ordered, grid, read_mask(files.gtv_nifti, grid)


def test_mask_rtstruct_mask_keeps_dice_at_least_0_99(phantom):
    _files, ct, _grid, gtv = phantom
    assert gtv.sum() > 0
    back = rtstruct_to_mask(mask_to_rtstruct(gtv, ct, "GTV"), ct, "GTV")
    assert dice(gtv, back) >= 0.99


@pytest.mark.dicom_tools
@pytest.mark.skipif(shutil.which("plastimatch") is None, reason="plastimatch not installed")
def test_plastimatch_reads_the_phantom_rtstruct_as_we_do(phantom, tmp_path):
    files, ct, grid, gtv = phantom
    ours = rtstruct_to_mask(pydicom.dcmread(files.rtstruct), ct, "GTV")
    theirs = plastimatch_masks(files.rtstruct, files.ct_dir, tmp_path / "pm", grid)["GTV"]
    assert dice(ours, theirs) >= 0.98
    assert dice(ours, gtv) >= 0.99


def _dciodvfy_errors(path) -> list[str]:
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (result.stdout + result.stderr).splitlines() if re.match(r"^\s*Error", line)]


@pytest.mark.dicom_tools
def test_rtstruct_and_seg_of_a_phantom_pass_dciodvfy(phantom, tmp_path):
    _files, ct, _grid, gtv = phantom
    rtstruct = mask_to_rtstruct(gtv, ct, "GTV")
    rtstruct.save_as(tmp_path / "rs.dcm", enforce_file_format=True)
    assert _dciodvfy_errors(tmp_path / "rs.dcm") == []
    mask_to_seg(gtv, ct, "GTV").save_as(tmp_path / "seg.dcm")
    assert _dciodvfy_errors(tmp_path / "seg.dcm") == []
    probability = np.clip(gtv.astype(np.float32) * 0.9 + 0.05, 0, 1)
    probability_to_seg(probability, ct, "GTV probability").save_as(tmp_path / "fseg.dcm")
    assert _dciodvfy_errors(tmp_path / "fseg.dcm") == []
