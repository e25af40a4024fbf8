"""Our RTSTRUCT reading agrees with plastimatch's rasteriser (an independent, widely used implementation)."""

import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from imaging.contours.maskio import read_mask
from imaging.contours.rtstruct import masks_to_rtstruct, rtstruct_to_mask
from imaging.geometry import grid_from_datasets

from .synthetic_ct import dice, lesion_mask, make_ct_series, write_ct_series

pytestmark = [
    pytest.mark.dicom_tools,
    pytest.mark.skipif(shutil.which("plastimatch") is None, reason="plastimatch not installed"),
]


def plastimatch_masks(rtstruct_path, ct_dir, out_dir, grid) -> dict[str, np.ndarray]:
    """Rasterise every ROI with plastimatch (contours of a plane XOR-ed), one NRRD per structure."""
    subprocess.run(
        [
            "plastimatch", "convert",
            "--input", str(rtstruct_path),
            "--referenced-ct", str(ct_dir),
            "--xor-contours",
            "--output-prefix", str(out_dir),
            "--prefix-format", "nrrd",
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    # read_mask checks that plastimatch's output lies exactly on the CT grid (LPS NRRD, x fastest).
    return {path.stem: read_mask(path, grid) for path in out_dir.glob("*.nrrd")}


def circle_ring(centre_mm, radius_mm, z_mm, points=48) -> list[float]:
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    xyz = np.column_stack(
        [centre_mm[0] + radius_mm * np.cos(angles), centre_mm[1] + radius_mm * np.sin(angles), np.full(points, z_mm)]
    )
    return [round(float(v), 3) for v in xyz.ravel()]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plastimatch")
    ct = make_ct_series(origin=(-40.18, 12.7, 301.25))
    write_ct_series(ct, folder / "ct")
    grid, _ = grid_from_datasets(ct)
    return folder, ct, grid


def test_voxel_edge_contours_with_hole_and_two_lesions_agree(case):
    folder, ct, grid = case
    gtv = lesion_mask(grid.shape)
    two = np.zeros(grid.shape, dtype=bool)
    two[9, 5:20, 5:15] = two[9, 40:60, 30:50] = True  # two lesions on one slice
    two[9, 10:14, 8:11] = False  # one of them with a hole
    path = folder / "voxel_edges.dcm"
    masks_to_rtstruct({"GTV": gtv, "TWO": two}, ct).save_as(path, enforce_file_format=True)
    theirs = plastimatch_masks(path, folder / "ct", folder / "voxel_edges", grid)
    structure_set = pydicom.dcmread(path)
    for name in ("GTV", "TWO"):
        ours = rtstruct_to_mask(structure_set, ct, name)
        assert dice(ours, theirs[name]) >= 0.98, name


def test_sub_pixel_polygons_with_hole_and_two_lesions_agree(case):
    """Contours as another planning system draws them: vertices anywhere, a hole as a second ring."""
    folder, ct, grid = case
    empty = np.zeros(grid.shape, dtype=bool)
    ds = masks_to_rtstruct({"GTV": empty}, ct)
    contours = []
    centre = grid.index_to_patient([[30.3, 28.6, 0]])[0][:2]
    other = grid.index_to_patient([[50.2, 50.7, 0]])[0][:2]
    for k in range(4, 12):
        z = float(grid.slice_positions()[k])
        rings = [circle_ring(centre, 17.3, z), circle_ring(centre, 6.1, z)]  # lesion with a hole
        if k in (8, 9):
            rings.append(circle_ring(other, 5.2, z, points=20))  # second lesion on the same slice
        for data in rings:
            item = pydicom.Dataset()
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(data) // 3
            item.ContourData = data
            contours.append(item)
    ds.ROIContourSequence[0].ContourSequence = pydicom.Sequence(contours)
    path = folder / "sub_pixel.dcm"
    ds.save_as(path, enforce_file_format=True)
    theirs = plastimatch_masks(path, folder / "ct", folder / "sub_pixel", grid)["GTV"]
    ours = rtstruct_to_mask(pydicom.dcmread(path), ct, "GTV")
    assert ours[8].any() and not ours[8][29, 30]  # the hole (centre row 28.6, column 30.3) is empty
    assert dice(ours, theirs) >= 0.98
