"""Masks and probability maps on the CT grid ⇄ DICOM Segmentation objects (highdicom).

SEG keeps voxels exactly (no polygon step) and carries a coded meaning, so it is the lossless DICOM
export of a contour (BINARY) and the natural home of the AI's voxel probabilities (FRACTIONAL,
PROBABILITY). Frames are the CT slices in z order; slices without foreground are omitted (smaller
files), which readers handle through the per-frame source image references. Pure, no Django.
"""

import re
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from imaging.geometry import grid_from_datasets

from .rtstruct import MANUFACTURER, frame_of_reference_uid

SOFTWARE_VERSION = "1"
# Coded meaning of a trial contour: an RT target (DCM CID 9503) of type GTV (CID 9534, SNOMED 228791009).
GTV_CATEGORY = codes.DCM.RTTarget
GTV_TYPE = codes.SCT.GTV


class SegError(ValueError):
    """A SEG cannot be written or read against this CT; the message says what does not match."""


def _ordered_ct(mask: np.ndarray, ct_datasets: Sequence[Dataset], what: str):
    grid, ordered = grid_from_datasets(ct_datasets)
    if np.shape(mask) != grid.shape:
        raise SegError(f"{what} shape {np.shape(mask)} does not match the CT grid {grid.shape} (z, y, x).")
    if not grid.frame_of_reference_uid:
        raise SegError("The CT has no FrameOfReferenceUID; a DICOM SEG cannot be tied to its patient space.")
    return grid, ordered


def _segmentation(
    pixels: np.ndarray,
    ordered: list[Dataset],
    label: str,
    segmentation_type: hd.seg.SegmentationTypeValues,
    algorithm: hd.AlgorithmIdentificationSequence | None,
    series_description: str,
    series_number: int,
) -> hd.seg.Segmentation:
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=label,
        segmented_property_category=GTV_CATEGORY,
        segmented_property_type=GTV_TYPE,
        algorithm_type=(
            hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if algorithm else hd.seg.SegmentAlgorithmTypeValues.MANUAL
        ),
        algorithm_identification=algorithm,
    )
    segmentation = hd.seg.Segmentation(
        source_images=ordered,
        pixel_array=pixels,
        segmentation_type=segmentation_type,
        segment_descriptions=[description],
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER,
        software_versions=SOFTWARE_VERSION,
        device_serial_number="none",
        content_label=_code_string(label),
        content_description=label[:64],
        fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
    )
    segmentation.SeriesDescription = series_description
    return segmentation


def _code_string(label: str) -> str:
    """A label as a Content Label (CS: upper case, digits and inner underscores, at most 16 characters)."""
    return re.sub(r"[^A-Z0-9]+", "_", label.upper()).strip("_")[:16].strip("_") or "SEGMENTATION"


def mask_to_seg(
    mask: np.ndarray,
    ct_datasets: Sequence[Dataset],
    label: str = "GTV",
    *,
    algorithm_name: str | None = None,
    algorithm_version: str = "",
    series_description: str = "ContourTrial segmentation",
    series_number: int = 901,
) -> hd.seg.Segmentation:
    """A BINARY SEG of a (z, y, x) mask; name an algorithm for AI output (else the segment is MANUAL)."""
    _, ordered = _ordered_ct(mask, ct_datasets, "Mask")
    algorithm = _algorithm(algorithm_name, algorithm_version)
    pixels = np.asarray(mask).astype(bool).astype(np.uint8)
    return _segmentation(
        pixels, ordered, label, hd.seg.SegmentationTypeValues.BINARY, algorithm, series_description, series_number
    )


def probability_to_seg(
    probability: np.ndarray,
    ct_datasets: Sequence[Dataset],
    label: str = "GTV probability",
    *,
    algorithm_name: str = "ContourTrial model",
    algorithm_version: str = "unversioned",
    series_description: str = "ContourTrial GTV probability",
    series_number: int = 902,
) -> hd.seg.Segmentation:
    """A FRACTIONAL (PROBABILITY) SEG of a (z, y, x) float map in [0, 1], stored in 1/255 steps."""
    _, ordered = _ordered_ct(probability, ct_datasets, "Probability map")
    values = np.asarray(probability, dtype=np.float32)
    if not np.isfinite(values).all() or values.min(initial=0) < 0 or values.max(initial=0) > 1:
        raise SegError("Probabilities must be finite and between 0 and 1.")
    algorithm = _algorithm(algorithm_name, algorithm_version)
    return _segmentation(
        values, ordered, label, hd.seg.SegmentationTypeValues.FRACTIONAL, algorithm, series_description, series_number
    )


def _algorithm(name: str | None, version: str) -> hd.AlgorithmIdentificationSequence | None:
    if not name:
        return None
    return hd.AlgorithmIdentificationSequence(
        name=name, family=codes.cid7162.ArtificialIntelligence, version=version or "unversioned"
    )


def seg_to_mask(
    seg_ds: Dataset, ct_datasets: Sequence[Dataset], segment_number: int | None = None, *, threshold: float = 0.5
) -> np.ndarray:
    """A bool (z, y, x) mask on the CT grid from a SEG drawn on that CT (fractional SEGs: value ≥ threshold)."""
    grid, _ = grid_from_datasets(ct_datasets)
    try:
        segmentation = hd.seg.Segmentation.from_dataset(seg_ds, copy=False)
    except (AttributeError, ValueError, TypeError, KeyError) as exc:
        raise SegError(f"Not a readable DICOM Segmentation ({exc}).") from exc
    numbers = list(segmentation.segment_numbers)
    if segment_number is None:
        if len(numbers) != 1:
            raise SegError(f"The SEG holds segments {numbers}; say which one to read.")
        segment_number = numbers[0]
    elif segment_number not in numbers:
        raise SegError(f"Segment {segment_number} is not in the SEG; it holds segments {numbers}.")
    seg_for = str(seg_ds.get("FrameOfReferenceUID", ""))
    if seg_for != frame_of_reference_uid(grid):
        raise SegError(
            f"The SEG is on frame of reference {seg_for or 'missing'}, the CT on {frame_of_reference_uid(grid)}."
        )
    referenced = {uid for _, _, uid in segmentation.get_source_image_uids()}
    absent = referenced - set(grid.sop_instance_uids)
    if absent:
        raise SegError(
            f"The SEG references {len(absent)} image(s) absent from the CT series {grid.series_instance_uid} "
            f"(e.g. SOP instance {sorted(absent)[0]}); send the complete CT it was made on."
        )
    pixels = segmentation.get_pixels_by_source_instance(
        source_sop_instance_uids=list(grid.sop_instance_uids),
        segment_numbers=[segment_number],
        assert_missing_frames_are_empty=True,
        dtype=np.float32,
    )[..., 0]
    if segmentation.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL:
        return pixels >= threshold
    return pixels > 0
