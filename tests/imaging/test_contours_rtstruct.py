"""Masks ⇄ RT Structure Sets: exact round trips, DICOM content, tolerated variants and refused inputs."""

import copy
import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from imaging.contours.rtstruct import (
    RTStructError,
    list_roi_names,
    mask_to_rtstruct,
    masks_to_rtstruct,
    rtstruct_to_mask,
)
from imaging.geometry import grid_from_datasets

from .synthetic_ct import dciodvfy_errors, dice, lesion_mask, make_ct_series

RT_UTILS = Path("/work/shared/data/external/rt-utils")
needs_rt_utils = pytest.mark.skipif(not RT_UTILS.is_dir(), reason="rt-utils sample files not available")
needs_dciodvfy = pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")


@pytest.fixture(scope="module")
def ct():
    return make_ct_series(origin=(-31.36, -25.5, -112.25))


@pytest.fixture(scope="module")
def grid(ct):
    return grid_from_datasets(ct)[0]


@pytest.fixture(scope="module")
def gtv(grid):
    return lesion_mask(grid.shape)


def reread(ds) -> pydicom.Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def test_round_trip_is_exact(ct, gtv):
    back = rtstruct_to_mask(reread(mask_to_rtstruct(gtv, ct, "GTV")), ct, "GTV")
    assert dice(back, gtv) >= 0.99
    np.testing.assert_array_equal(back, gtv)


def test_random_masks_round_trip_exactly(ct, grid):
    rng = np.random.default_rng(11)
    mask = np.zeros(grid.shape, dtype=bool)
    mask[3:6, 10:40, 10:50] = rng.random((3, 30, 40)) < 0.35  # many tiny objects, holes and corner contacts
    np.testing.assert_array_equal(rtstruct_to_mask(reread(mask_to_rtstruct(mask, ct, "noise")), ct, "noise"), mask)


def test_dataset_content(ct, grid, gtv):
    ds = mask_to_rtstruct(gtv, ct, "GTV", color=(0, 128, 255), series_description="Physician GTV")
    first = ct[0]
    assert ds.Modality == "RTSTRUCT" and ds.SOPClassUID == pydicom.uid.RTStructureSetStorage
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPInstanceUID not in grid.sop_instance_uids and ds.SeriesInstanceUID != grid.series_instance_uid
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID"):
        assert ds[keyword].value == first[keyword].value
    assert ds.Manufacturer == "ContourTrial" and ds.SeriesDescription == "Physician GTV"
    assert ds.StructureSetDate and ds.StructureSetTime
    (frame,) = ds.ReferencedFrameOfReferenceSequence
    assert frame.FrameOfReferenceUID == grid.frame_of_reference_uid
    (series,) = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence
    assert series.SeriesInstanceUID == grid.series_instance_uid
    assert {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence} == set(grid.sop_instance_uids)
    (roi,) = ds.StructureSetROISequence
    assert roi.ROIName == "GTV" and roi.ReferencedFrameOfReferenceUID == grid.frame_of_reference_uid
    (observation,) = ds.RTROIObservationsSequence
    assert observation.RTROIInterpretedType == "GTV" and observation.ReferencedROINumber == roi.ROINumber
    (roi_contour,) = ds.ROIContourSequence
    assert list(roi_contour.ROIDisplayColor) == [0, 128, 255]
    positions = {ds.SOPInstanceUID: float(ds.ImagePositionPatient[2]) for ds in ct}
    slices_with_contours = set()
    for item in roi_contour.ContourSequence:
        assert item.ContourGeometricType == "CLOSED_PLANAR"
        points = np.array(item.ContourData, dtype=float).reshape(-1, 3)
        assert len(points) == item.NumberOfContourPoints
        (image,) = item.ContourImageSequence
        # Axial CT: every point of a contour lies at its referenced slice's z.
        np.testing.assert_allclose(points[:, 2], positions[image.ReferencedSOPInstanceUID], atol=1e-6)
        slices_with_contours.add(image.ReferencedSOPInstanceUID)
    expected = {grid.sop_instance_uids[k] for k in np.flatnonzero(gtv.any(axis=(1, 2)))}
    assert slices_with_contours == expected


def test_contours_run_on_voxel_edges_in_patient_mm(ct, grid):
    mask = np.zeros(grid.shape, dtype=bool)
    mask[4, 10, 20] = True  # one voxel
    (item,) = mask_to_rtstruct(mask, ct, "dot").ROIContourSequence[0].ContourSequence
    points = np.array(item.ContourData, dtype=float).reshape(-1, 3)
    centre = grid.index_to_patient([[20, 10, 4]])[0]
    row_spacing, column_spacing = (float(v) for v in ct[0].PixelSpacing)
    np.testing.assert_allclose(np.abs(points[:, 0] - centre[0]), column_spacing / 2, atol=1e-6)
    np.testing.assert_allclose(np.abs(points[:, 1] - centre[1]), row_spacing / 2, atol=1e-6)


def test_several_rois_and_adding_to_an_existing_structure_set(ct, grid, gtv):
    node = np.zeros(grid.shape, dtype=bool)
    node[6:9, 40:50, 8:14] = True
    ds = reread(masks_to_rtstruct({"GTVp": gtv, "GTVn": node}, ct, colors={"GTVn": (0, 255, 0)}))
    assert list_roi_names(ds) == ["GTVp", "GTVn"]
    np.testing.assert_array_equal(rtstruct_to_mask(ds, ct, "GTVn"), node)
    np.testing.assert_array_equal(rtstruct_to_mask(ds, ct, "GTVp"), gtv)
    empty = np.zeros(grid.shape, dtype=bool)
    more = reread(mask_to_rtstruct(empty, ct, "Empty", existing=pydicom.Dataset(ds)))  # no file meta needed
    assert list_roi_names(more) == ["GTVp", "GTVn", "Empty"]
    assert more.SOPInstanceUID != ds.SOPInstanceUID and more.SeriesInstanceUID == ds.SeriesInstanceUID
    assert len({int(r.ROINumber) for r in more.StructureSetROISequence}) == 3
    assert not rtstruct_to_mask(more, ct, "Empty").any()
    np.testing.assert_array_equal(rtstruct_to_mask(more, ct, "GTVn"), node)
    with pytest.raises(RTStructError, match="already has an ROI named 'GTVn'"):
        mask_to_rtstruct(node, ct, "GTVn", existing=more)


def test_roi_name_lookup_forgives_case_and_spaces(ct, gtv):
    ds = mask_to_rtstruct(gtv, ct, "GTV Primary")
    np.testing.assert_array_equal(rtstruct_to_mask(ds, ct, " gtv primary"), gtv)


def test_slice_order_and_missing_contour_image_references_do_not_matter(ct, gtv):
    ds = reread(mask_to_rtstruct(gtv, ct, "GTV"))
    for item in ds.ROIContourSequence[0].ContourSequence:
        del item.ContourImageSequence  # optional in DICOM: slices are matched by plane position
    reordered = sorted(ct, key=lambda d: d.SOPInstanceUID)
    np.testing.assert_array_equal(rtstruct_to_mask(ds, reordered, "GTV"), gtv)


def test_contour_planes_within_half_a_slice_are_accepted(ct, grid, gtv):
    ds = reread(mask_to_rtstruct(gtv, ct, "GTV"))
    for item in ds.ROIContourSequence[0].ContourSequence:
        points = np.array(item.ContourData, dtype=float).reshape(-1, 3)
        points[:, 2] += 0.4 * grid.spacing[0]  # e.g. a planning system rounding slice positions
        item.ContourData = [f"{v:.6f}" for v in points.ravel()]
    np.testing.assert_array_equal(rtstruct_to_mask(ds, ct, "GTV"), gtv)


def test_sub_pixel_vertices_use_pixel_centre_inclusion(ct, grid):
    ds = reread(mask_to_rtstruct(np.zeros(grid.shape, dtype=bool), ct, "Box"))
    k = 7
    z = grid.slice_positions()[k]
    x0, x1, y0, y1 = -20.13, 3.77, -10.41, 8.06  # mm, not on pixel edges
    item = pydicom.Dataset()
    item.ContourGeometricType = "CLOSED_PLANAR"
    item.NumberOfContourPoints = 4
    item.ContourData = [x0, y0, z, x1, y0, z, x1, y1, z, x0, y1, z]
    ds.ROIContourSequence[0].ContourSequence = pydicom.Sequence([item])
    mask = rtstruct_to_mask(ds, ct, "Box")
    centres = grid.index_to_patient(np.array([[i, j, k] for j in range(grid.shape[1]) for i in range(grid.shape[2])]))
    inside = ((centres[:, 0] > x0) & (centres[:, 0] < x1) & (centres[:, 1] > y0) & (centres[:, 1] < y1)).reshape(
        grid.shape[1:]
    )
    np.testing.assert_array_equal(mask[k], inside)
    assert mask.sum() == inside.sum()


def test_oblique_series_round_trip():
    ct = [pydicom.dcmread(p) for p in sorted((RT_UTILS / "oriented").glob("*.dcm"))]
    if not ct:
        pytest.skip("rt-utils oriented series not available")
    grid, _ = grid_from_datasets(ct)
    rng = np.random.default_rng(5)
    mask = np.zeros(grid.shape, dtype=bool)
    mask[:, 5:40, 10:80] = rng.random((grid.shape[0], 35, 70)) < 0.6
    ds = reread(mask_to_rtstruct(mask, ct, "GTV"))
    np.testing.assert_array_equal(rtstruct_to_mask(ds, ct, "GTV"), mask)


@needs_rt_utils
def test_rt_utils_structure_set_reads_against_its_ct():
    ct = [pydicom.dcmread(RT_UTILS / name) for name in ("ct_1.dcm", "ct_2.dcm")]
    ds = pydicom.dcmread(RT_UTILS / "rt.dcm")
    grid, _ = grid_from_datasets(ct)
    assert list_roi_names(ds) == ["ROI-1"]
    mask = rtstruct_to_mask(ds, ct, "ROI-1")
    referenced = {
        ref.ReferencedSOPInstanceUID for c in ds.ROIContourSequence[0].ContourSequence for ref in c.ContourImageSequence
    }
    for k, uid in enumerate(grid.sop_instance_uids):
        assert mask[k].any() == (uid in referenced)
    # Two contours on one plane, the second inside the first: XOR leaves a ring-shaped region.
    assert 0 < mask.sum() < (24 / 0.488281) ** 2


@needs_rt_utils
@pytest.mark.parametrize("name", ["invalid_reference_rt.dcm", "non_existent_reference_rt.dcm"])
def test_rt_utils_structure_sets_on_images_we_lack_are_refused(name):
    ct = [pydicom.dcmread(RT_UTILS / f) for f in ("ct_1.dcm", "ct_2.dcm")]
    ds = pydicom.dcmread(RT_UTILS / name)
    with pytest.raises(RTStructError, match=r"image\(s\) absent from the CT series"):
        rtstruct_to_mask(ds, ct, "ROI-1")


def test_unknown_roi_lists_the_available_ones(ct, gtv):
    ds = masks_to_rtstruct({"GTVp": gtv, "GTVn": gtv}, ct)
    with pytest.raises(RTStructError, match="'CTV' is not in the structure set; available ROIs: 'GTVp', 'GTVn'"):
        rtstruct_to_mask(ds, ct, "CTV")


def test_other_frame_of_reference_is_refused(ct, gtv):
    ds = mask_to_rtstruct(gtv, ct, "GTV")
    other_ct = make_ct_series(seed=1)  # same grid, another scan
    with pytest.raises(RTStructError, match="frame of reference"):
        rtstruct_to_mask(ds, other_ct, "GTV")


def test_references_to_images_absent_from_the_ct_are_refused(ct, grid, gtv):
    ds = mask_to_rtstruct(gtv, ct, "GTV")
    top = grid.sop_instance_uids[-1]
    partial = [d for d in ct if d.SOPInstanceUID != top]  # still a regular series, one slice short
    with pytest.raises(RTStructError, match=f"absent from the CT series.*{top}"):
        rtstruct_to_mask(ds, partial, "GTV")


def edit_first_contour(ds, change):
    ds = copy.deepcopy(ds)
    item = ds.ROIContourSequence[0].ContourSequence[0]
    points = np.array(item.ContourData, dtype=float).reshape(-1, 3)
    change(points)
    item.ContourData = [f"{v:.6f}" for v in points.ravel()]
    return ds


def test_contour_between_slices_is_refused(ct, grid, gtv):
    ds = mask_to_rtstruct(gtv, ct, "GTV")

    def halfway(points):
        points[:, 2] += 0.5 * grid.spacing[0]

    with pytest.raises(RTStructError, match="not on a CT slice plane"):
        rtstruct_to_mask(edit_first_contour(ds, halfway), ct, "GTV")

    def beyond(points):
        points[:, 2] = grid.slice_positions()[-1] + 3 * grid.spacing[0]

    with pytest.raises(RTStructError, match="not on a CT slice plane"):
        rtstruct_to_mask(edit_first_contour(ds, beyond), ct, "GTV")


def test_non_planar_contour_is_refused(ct, grid, gtv):
    def tilt(points):
        points[0, 2] += 1.0

    with pytest.raises(RTStructError, match="not planar"):
        rtstruct_to_mask(edit_first_contour(mask_to_rtstruct(gtv, ct, "GTV"), tilt), ct, "GTV")


def test_points_only_roi_is_refused(ct, gtv):
    ds = mask_to_rtstruct(gtv, ct, "Marker")
    for item in ds.ROIContourSequence[0].ContourSequence:
        item.ContourGeometricType = "POINT"
    with pytest.raises(RTStructError, match="no closed planar contours"):
        rtstruct_to_mask(ds, ct, "Marker")


def test_other_objects_and_bad_masks_are_refused(ct, grid, gtv):
    with pytest.raises(RTStructError, match="Not an RT Structure Set"):
        rtstruct_to_mask(ct[0], ct, "GTV")
    with pytest.raises(RTStructError, match="does not match the CT grid"):
        mask_to_rtstruct(gtv[:-1], ct, "GTV")
    with pytest.raises(RTStructError, match="non-empty"):
        mask_to_rtstruct(gtv, ct, "  ")


@pytest.mark.dicom_tools
@needs_dciodvfy
def test_dciodvfy_finds_no_errors(tmp_path, ct, gtv):
    single = mask_to_rtstruct(gtv, ct, "GTV")
    several = masks_to_rtstruct({"GTVp": gtv, "Empty": np.zeros_like(gtv)}, ct)
    extended = mask_to_rtstruct(gtv, ct, "GTVn", existing=several)
    for name, ds in (("single", single), ("several", several), ("extended", extended)):
        path = tmp_path / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        assert dciodvfy_errors(path) == [], name
