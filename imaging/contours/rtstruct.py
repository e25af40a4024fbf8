"""Masks on the CT grid ⇄ DICOM RT Structure Sets (CLOSED_PLANAR contours in patient millimetres).

Writing traces each slice's mask along voxel edges (``polygons``), so reading our own structure sets
back gives the same mask exactly. Reading matches contours to CT slices by the position of their plane
along the slice normal (ContourImageSequence is optional in DICOM) and combines the contours of one
plane by XOR, so holes and islands-in-holes come back as drawn. Pure pydicom + numpy, no Django.
"""

import copy
import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ImplicitVRLittleEndian, RTStructureSetStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from imaging.geometry import Grid, grid_from_datasets

from .polygons import mask_slice_to_polygons
from .rasterise import polygons_to_mask_slice

MANUFACTURER = "ContourTrial"
# RT Referenced Study items name the study by this SOP class (the retired Detached Study Management
# class), as PS3.3 C.8.8.5 still expects and as treatment planning systems write it.
STUDY_REFERENCE_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"
CLOSED_TYPES = {"CLOSED_PLANAR", "CLOSEDPLANAR_XOR"}
NON_PLANAR_TOLERANCE_MM = 0.1  # spread of one contour's points along the slice normal
PLANE_TOLERANCE_FRACTION = 0.5  # a contour plane must lie closer than this × slice spacing to a CT slice
CONTOUR_DATA = Tag(0x3006, 0x0050)

# Patient and General Study attributes of type 2 in the RT Structure Set IOD: copied from the CT, or empty.
_TYPE2_FROM_CT = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
# Optional patient/study/clinical-trial attributes worth keeping with the contours when the CT has them.
_OPTIONAL_FROM_CT = (
    "SpecificCharacterSet",
    "IssuerOfPatientID",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "StudyDescription",
    "ClinicalTrialSponsorName",
    "ClinicalTrialProtocolID",
    "ClinicalTrialProtocolName",
    "ClinicalTrialSiteID",
    "ClinicalTrialSiteName",
    "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID",
    "ClinicalTrialTimePointID",
    "ClinicalTrialTimePointDescription",
)


class RTStructError(ValueError):
    """A structure set cannot be written or read against this CT; the message names the ROI/contour/slice."""


def frame_of_reference_uid(grid: Grid) -> str:
    """The CT's Frame of Reference UID, or one derived from its series when the CT lacks it (non-conformant)."""
    return grid.frame_of_reference_uid or generate_uid(entropy_srcs=["frame-of-reference", grid.series_instance_uid])


def _now() -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")


def _image_reference(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def _ct_sop_class(grid: Grid) -> str:
    return grid.sop_class_uid or pydicom.uid.CTImageStorage


def _referenced_series_item(grid: Grid) -> Dataset:
    series = Dataset()
    series.SeriesInstanceUID = grid.series_instance_uid
    series.ContourImageSequence = DicomSequence(
        [_image_reference(_ct_sop_class(grid), uid) for uid in grid.sop_instance_uids]
    )
    return series


def _referenced_frame_item(grid: Grid) -> Dataset:
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_REFERENCE_SOP_CLASS
    study.ReferencedSOPInstanceUID = grid.study_instance_uid
    study.RTReferencedSeriesSequence = DicomSequence([_referenced_series_item(grid)])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_of_reference_uid(grid)
    frame.RTReferencedStudySequence = DicomSequence([study])
    return frame


def _merge_frame_reference(ds: Dataset, grid: Grid) -> None:
    """Make an existing structure set reference every image of this CT (adding what is missing)."""
    frames = ds.setdefault("ReferencedFrameOfReferenceSequence", DicomSequence()).value
    for_uid = frame_of_reference_uid(grid)
    frame = next((f for f in frames if f.get("FrameOfReferenceUID") == for_uid), None)
    if frame is None:
        frames.append(_referenced_frame_item(grid))
        return
    studies = frame.setdefault("RTReferencedStudySequence", DicomSequence()).value
    study = next((s for s in studies if s.get("ReferencedSOPInstanceUID") == grid.study_instance_uid), None)
    if study is None:
        studies.append(_referenced_frame_item(grid).RTReferencedStudySequence[0])
        return
    series_items = study.setdefault("RTReferencedSeriesSequence", DicomSequence()).value
    series = next((s for s in series_items if s.get("SeriesInstanceUID") == grid.series_instance_uid), None)
    if series is None:
        series_items.append(_referenced_series_item(grid))
        return
    images = series.setdefault("ContourImageSequence", DicomSequence()).value
    known = {item.get("ReferencedSOPInstanceUID") for item in images}
    images.extend(_image_reference(_ct_sop_class(grid), uid) for uid in grid.sop_instance_uids if uid not in known)


def _decimal(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")  # micrometre precision: far below any voxel
    if text in ("", "-0"):
        return "0"
    return text if len(text) <= 16 else format_number_as_ds(value)


def _contour_data(values: np.ndarray) -> RawDataElement:
    """ContourData as ready-encoded DS text: pydicom's per-value DS objects cost seconds on large masks."""
    data = "\\".join(_decimal(float(v)) for v in values).encode("ascii")
    if len(data) % 2:
        data += b" "
    return RawDataElement(CONTOUR_DATA, "DS", len(data), data, 0, True, True)


def _contour_values(item: Dataset) -> np.ndarray:
    element = item.get_item(CONTOUR_DATA)
    if element is None:
        return np.zeros(0)
    if isinstance(element, RawDataElement) and isinstance(element.value, bytes):
        text = element.value.strip(b" \0")
        return np.array(text.split(b"\\"), dtype="S").astype(float) if text else np.zeros(0)
    value = element.value
    return np.array([float(v) for v in (value if isinstance(value, list | pydicom.multival.MultiValue) else [value])])


def _contour_items(mask: np.ndarray, grid: Grid) -> list[Dataset]:
    items = []
    sop_class = _ct_sop_class(grid)
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        for ring in mask_slice_to_polygons(mask[k]):
            ijk = np.column_stack([ring, np.full(len(ring), float(k))])
            points = grid.index_to_patient(ijk).ravel()
            item = Dataset()
            item.ContourImageSequence = DicomSequence([_image_reference(sop_class, grid.sop_instance_uids[k])])
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(ring)
            item.ContourNumber = len(items) + 1
            item[CONTOUR_DATA] = _contour_data(points)
            items.append(item)
    return items


def _check_roi_name(name: str, taken: set[str]) -> None:
    if not isinstance(name, str) or not name.strip():
        raise RTStructError("An ROI name must be a non-empty text.")
    if len(name) > 64 or "\\" in name:
        raise RTStructError(f"ROI name {name!r} must be at most 64 characters without backslashes.")
    if name in taken:
        raise RTStructError(f"The structure set already has an ROI named {name!r}; choose another name.")


def _file_dataset(content: Dataset) -> FileDataset:
    """A Part 10 dataset with a new SOP Instance UID, in implicit VR: ContourData may exceed 64 KiB."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTStructureSetStorage
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds = FileDataset(None, content, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


def _new_structure_set(ct: Dataset, grid: Grid, label: str, description: str, series_number: int | None) -> Dataset:
    ds = _file_dataset(Dataset())
    for keyword in _OPTIONAL_FROM_CT:
        if keyword in ct:
            ds[keyword] = copy.deepcopy(ct[keyword])
    for keyword in _TYPE2_FROM_CT:
        if keyword in ct:
            ds[keyword] = copy.deepcopy(ct[keyword])
        else:
            setattr(ds, keyword, None)  # type 2: present, empty
    ds.SOPClassUID = RTStructureSetStorage
    ds.StudyInstanceUID = grid.study_instance_uid
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.OperatorsName = None
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MANUFACTURER
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = frame_of_reference_uid(grid)
    ds.PositionReferenceIndicator = ct.get("PositionReferenceIndicator")
    ds.StructureSetLabel = label
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([_referenced_frame_item(grid)])
    ds.StructureSetROISequence = DicomSequence()
    ds.ROIContourSequence = DicomSequence()
    ds.RTROIObservationsSequence = DicomSequence()
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def masks_to_rtstruct(
    masks: Mapping[str, np.ndarray],
    ct_datasets: Sequence[Dataset],
    *,
    colors: Mapping[str, tuple[int, int, int]] | None = None,
    label: str = "ContourTrial",
    series_description: str = "ContourTrial contours",
    series_number: int | None = 900,
    interpreted_type: str = "GTV",
    generation_algorithm: str = "MANUAL",
    existing: Dataset | None = None,
) -> FileDataset:
    """A complete RT Structure Set holding one ROI per ``name → (z, y, x) mask`` on this CT's grid.

    With ``existing``, the ROIs are added to a copy of that structure set (same series, new SOP
    instance), which must be on the same frame of reference and must not already use the names.
    """
    grid, ordered = grid_from_datasets(ct_datasets)
    if not masks:
        raise RTStructError("Give at least one ROI (name → mask) to write.")
    taken: set[str] = set()
    for name, mask in masks.items():
        _check_roi_name(name, taken)
        taken.add(name)
        if np.shape(mask) != grid.shape:
            raise RTStructError(f"ROI {name!r}: mask shape {np.shape(mask)} does not match the CT grid {grid.shape}.")
    if existing is not None:
        if str(existing.get("Modality", "")) != "RTSTRUCT":
            raise RTStructError("The existing dataset to add ROIs to is not an RT Structure Set.")
        frames = existing.get("ReferencedFrameOfReferenceSequence", [])
        other = {str(f.get("FrameOfReferenceUID", "")) for f in frames}
        if other and frame_of_reference_uid(grid) not in other:
            raise RTStructError(
                f"The existing structure set is on frame of reference {', '.join(sorted(other))}, "
                f"the CT on {frame_of_reference_uid(grid)}; contours cannot be combined."
            )
        ds = _file_dataset(copy.deepcopy(existing))
        for keyword in ("StructureSetROISequence", "ROIContourSequence", "RTROIObservationsSequence"):
            ds.setdefault(keyword, DicomSequence())
        _merge_frame_reference(ds, grid)
    else:
        if len(label) > 16 or "\\" in label or not label.strip():
            raise RTStructError(f"Structure set label {label!r} must be 1 to 16 characters without backslashes.")
        ds = _new_structure_set(ordered[0], grid, label, series_description, series_number)
    texts = [*masks, label, series_description]
    if "SpecificCharacterSet" not in ds and not all(text.isascii() for text in texts):
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8 for non-ASCII ROI names
    date, time = _now()
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.StructureSetDate, ds.StructureSetTime = date, time
    ds.TimezoneOffsetFromUTC = "+0000"

    taken = {str(item.get("ROIName", "")) for item in ds.StructureSetROISequence}
    number = max((int(item.ROINumber) for item in ds.StructureSetROISequence), default=0)
    observation = max((int(item.ObservationNumber) for item in ds.RTROIObservationsSequence), default=0)
    for name, mask in masks.items():
        _check_roi_name(name, taken)
        taken.add(name)
        number += 1
        observation += 1
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_of_reference_uid(grid)
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = generation_algorithm
        ds.StructureSetROISequence.append(roi)
        contour = Dataset()
        contour.ROIDisplayColor = list((colors or {}).get(name, (255, 0, 0)))
        items = _contour_items(np.asarray(mask).astype(bool), grid)
        if items:
            contour.ContourSequence = DicomSequence(items)
        contour.ReferencedROINumber = number
        ds.ROIContourSequence.append(contour)
        obs = Dataset()
        obs.ObservationNumber = observation
        obs.ReferencedROINumber = number
        obs.ROIObservationLabel = name[:16]
        obs.RTROIInterpretedType = interpreted_type
        obs.ROIInterpreter = None
        ds.RTROIObservationsSequence.append(obs)
    return ds


def mask_to_rtstruct(
    mask: np.ndarray,
    ct_datasets: Sequence[Dataset],
    roi_name: str,
    *,
    color: tuple[int, int, int] = (255, 0, 0),
    label: str = "ContourTrial",
    series_description: str = "ContourTrial contours",
    series_number: int | None = 900,
    interpreted_type: str = "GTV",
    generation_algorithm: str = "MANUAL",
    existing: Dataset | None = None,
) -> FileDataset:
    """A complete RT Structure Set with one ROI (a GTV by default) from a (z, y, x) mask on the CT grid."""
    return masks_to_rtstruct(
        {roi_name: mask},
        ct_datasets,
        colors={roi_name: color},
        label=label,
        series_description=series_description,
        series_number=series_number,
        interpreted_type=interpreted_type,
        generation_algorithm=generation_algorithm,
        existing=existing,
    )


# ---------------------------------------------------------------------------------------------- reading


def list_roi_names(rtstruct_ds: Dataset) -> list[str]:
    """ROI names in the order of the StructureSetROISequence."""
    return [str(item.get("ROIName", "")) for item in rtstruct_ds.get("StructureSetROISequence", [])]


def _check_is_rtstruct(ds: Dataset) -> None:
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class != RTStructureSetStorage and str(ds.get("Modality", "")) != "RTSTRUCT":
        raise RTStructError(
            f"Not an RT Structure Set (SOP class {sop_class or 'missing'}, modality {ds.get('Modality', 'missing')})."
        )


def _find_roi(ds: Dataset, roi_name: str) -> Dataset:
    rois = list(ds.get("StructureSetROISequence", []))
    matches = [roi for roi in rois if str(roi.get("ROIName", "")) == roi_name]
    if not matches:  # names typed by people differ in case and surrounding spaces
        matches = [roi for roi in rois if str(roi.get("ROIName", "")).strip().lower() == roi_name.strip().lower()]
    if len(matches) != 1:
        names = ", ".join(repr(n) for n in list_roi_names(ds)) or "none"
        problem = "is ambiguous" if matches else "is not in the structure set"
        raise RTStructError(f"ROI {roi_name!r} {problem}; available ROIs: {names}.")
    return matches[0]


def _referenced_images(ds: Dataset, series_uid: str) -> set[str]:
    """SOP instances the structure set lists for this CT series in ReferencedFrameOfReferenceSequence."""
    found = set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                if str(series.get("SeriesInstanceUID", "")) == series_uid:
                    found |= {str(i.ReferencedSOPInstanceUID) for i in series.get("ContourImageSequence", [])}
    return found


def _contours_of(ds: Dataset, roi_number: int) -> list[Dataset]:
    return [
        item
        for roi_contour in ds.get("ROIContourSequence", [])
        if int(roi_contour.get("ReferencedROINumber", -1)) == roi_number
        for item in roi_contour.get("ContourSequence", [])
    ]


def _check_references(ds: Dataset, roi: Dataset, contours: list[Dataset], grid: Grid) -> None:
    """Refuse structure sets drawn on another frame of reference or on images this CT lacks."""
    ct_images = set(grid.sop_instance_uids)
    name = roi.get("ROIName", "")
    contour_refs = {
        str(ref.ReferencedSOPInstanceUID) for item in contours for ref in item.get("ContourImageSequence", [])
    }
    series_refs = _referenced_images(ds, grid.series_instance_uid)
    ss_for = str(roi.get("ReferencedFrameOfReferenceUID", "")) or next(
        (str(f.get("FrameOfReferenceUID", "")) for f in ds.get("ReferencedFrameOfReferenceSequence", [])), ""
    )
    ct_for = frame_of_reference_uid(grid)
    if ss_for != ct_for:
        # Some tools write a fresh UID here by mistake; explicit references to this CT's own images
        # (globally unique) still tie the contours to its frame of reference.
        refs = contour_refs | series_refs
        if not refs or not refs <= ct_images:
            raise RTStructError(
                f"ROI {name!r} is on frame of reference {ss_for or 'missing'}, but the CT is on {ct_for}: "
                "the structure set was drawn on another scan or registration."
            )
    absent = (contour_refs | series_refs) - ct_images
    if absent:
        example = sorted(absent)[0]
        raise RTStructError(
            f"ROI {name!r}: the structure set references {len(absent)} image(s) absent from the CT series "
            f"{grid.series_instance_uid} (e.g. SOP instance {example}); send the complete CT it was drawn on."
        )


def _contour_slice(item: Dataset, number: int, name: str, grid: Grid) -> tuple[int, np.ndarray]:
    """The CT slice a contour lies on, and its points as (column, row) continuous indices."""
    try:
        values = _contour_values(item)
    except (TypeError, ValueError) as exc:
        raise RTStructError(f"ROI {name!r}, contour {number}: ContourData is not numeric.") from exc
    if values.size == 0 or values.size % 3:
        raise RTStructError(f"ROI {name!r}, contour {number}: ContourData must hold x, y, z triplets.")
    ijk = grid.patient_to_index(values.reshape(-1, 3))
    spacing = grid.spacing[0]
    k = ijk[:, 2]
    spread = float(k.max() - k.min()) * spacing
    if spread > NON_PLANAR_TOLERANCE_MM:
        raise RTStructError(
            f"ROI {name!r}, contour {number} is not planar in a CT slice: its points span {spread:.2f} mm "
            "along the slice normal."
        )
    plane = float(k.mean())
    nearest = round(plane)
    if not 0 <= nearest < grid.shape[0] or abs(plane - nearest) >= PLANE_TOLERANCE_FRACTION:
        first, last = grid.slice_positions()[[0, -1]]
        position = first + plane * spacing
        raise RTStructError(
            f"ROI {name!r}, contour {number} lies at {position:.2f} mm along the slice normal, not on a CT slice "
            f"plane (slices every {spacing:.2f} mm from {first:.2f} to {last:.2f} mm)."
        )
    return nearest, ijk[:, :2]


def rtstruct_to_mask(rtstruct_ds: Dataset, ct_datasets: Sequence[Dataset], roi_name: str) -> np.ndarray:
    """One ROI of a structure set as a bool (z, y, x) mask on the CT grid (contours of a plane XOR-ed)."""
    _check_is_rtstruct(rtstruct_ds)
    grid, _ = grid_from_datasets(ct_datasets)
    roi = _find_roi(rtstruct_ds, roi_name)
    name = str(roi.get("ROIName", ""))
    contours = _contours_of(rtstruct_ds, int(roi.get("ROINumber", -1)))
    _check_references(rtstruct_ds, roi, contours, grid)
    closed = [c for c in contours if str(c.get("ContourGeometricType", "")).upper() in CLOSED_TYPES]
    if contours and not closed:
        kinds = sorted({str(c.get("ContourGeometricType", "missing")) for c in contours})
        raise RTStructError(f"ROI {name!r} has no closed planar contours ({', '.join(kinds)}); it encloses no volume.")
    rings_by_slice: dict[int, list[np.ndarray]] = {}
    for number, item in enumerate(closed, start=1):
        k, ring = _contour_slice(item, int(item.get("ContourNumber", number) or number), name, grid)
        rings_by_slice.setdefault(k, []).append(ring)
    mask = np.zeros(grid.shape, dtype=bool)
    for k, rings in rings_by_slice.items():
        mask[k] = polygons_to_mask_slice(rings, grid.shape[1:])
    return mask
