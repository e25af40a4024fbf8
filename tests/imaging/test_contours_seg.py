"""Masks and probabilities ⇄ DICOM SEG (binary and fractional), checked by highdicom and dciodvfy."""

import io
import shutil

import highdicom as hd
import numpy as np
import pydicom
import pytest

from imaging.contours.seg import GTV_TYPE, SegError, mask_to_seg, probability_to_seg, seg_to_mask
from imaging.geometry import grid_from_datasets

from .synthetic_ct import dciodvfy_errors, lesion_mask, make_ct_series


@pytest.fixture(scope="module")
def ct():
    return make_ct_series(rows=48, columns=40, slices=12, origin=(12.5, -80.25, 40.0))


@pytest.fixture(scope="module")
def grid(ct):
    return grid_from_datasets(ct)[0]


def reread(ds) -> pydicom.Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def test_binary_round_trip_is_exact(ct, grid):
    mask = lesion_mask(grid.shape)
    seg = reread(mask_to_seg(mask, ct, "GTV"))
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    (segment,) = seg.SegmentSequence
    assert segment.SegmentLabel == "GTV" and segment.SegmentAlgorithmType == "MANUAL"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == GTV_TYPE.value
    assert seg.FrameOfReferenceUID == grid.frame_of_reference_uid
    assert seg.StudyInstanceUID == grid.study_instance_uid and seg.PatientID == ct[0].PatientID
    # Empty slices are omitted from the frames but come back empty.
    assert int(seg.NumberOfFrames) == int(mask.any(axis=(1, 2)).sum())
    np.testing.assert_array_equal(seg_to_mask(seg, list(reversed(ct))), mask)


def test_fractional_probability_round_trip(ct, grid):
    z, y, x = np.indices(grid.shape)
    probability = np.clip(1 - np.sqrt((y - 24) ** 2 + (x - 20) ** 2 + (2 * (z - 6)) ** 2) / 15, 0, 1)
    seg = reread(probability_to_seg(probability, ct, algorithm_name="nnU-Net GTV", algorithm_version="2024.1"))
    assert seg.SegmentationType == "FRACTIONAL" and seg.SegmentationFractionalType == "PROBABILITY"
    (segment,) = seg.SegmentSequence
    assert segment.SegmentAlgorithmType == "AUTOMATIC" and segment.SegmentAlgorithmName == "nnU-Net GTV"
    stored = hd.seg.Segmentation.from_dataset(seg).get_pixels_by_source_instance(
        list(grid.sop_instance_uids), assert_missing_frames_are_empty=True, dtype=np.float32
    )[..., 0]
    np.testing.assert_allclose(stored, probability, atol=0.5 / 255 + 1e-6)  # 8-bit steps
    mask = seg_to_mask(seg, ct, threshold=0.5)
    clear = np.abs(probability - 0.5) > 1 / 255  # away from the quantisation step at the threshold
    np.testing.assert_array_equal(mask[clear], probability[clear] >= 0.5)


def test_bad_inputs_are_refused(ct, grid):
    with pytest.raises(SegError, match="between 0 and 1"):
        probability_to_seg(np.full(grid.shape, 1.5), ct)
    with pytest.raises(SegError, match="does not match the CT grid"):
        mask_to_seg(np.zeros((1, 2, 3), dtype=bool), ct)
    seg = mask_to_seg(lesion_mask(grid.shape), ct)
    with pytest.raises(SegError, match="frame of reference"):
        seg_to_mask(seg, make_ct_series(rows=48, columns=40, slices=12, origin=(12.5, -80.25, 40.0), seed=3))
    with pytest.raises(SegError, match="Segment 2 is not in the SEG"):
        seg_to_mask(seg, ct, segment_number=2)


@pytest.mark.dicom_tools
@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_dciodvfy_finds_no_errors(tmp_path, ct, grid):
    binary = mask_to_seg(lesion_mask(grid.shape), ct, "GTV")
    fractional = probability_to_seg(np.random.default_rng(0).random(grid.shape), ct)
    for name, ds in (("binary", binary), ("fractional", fractional)):
        path = tmp_path / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        assert dciodvfy_errors(path) == [], name
