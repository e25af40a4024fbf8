"""Correction metrics between two contours from files: `manage.py contour_metrics BEFORE AFTER [--json]`."""

import json
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
from django.core.management.base import BaseCommand, CommandError
from pydicom.errors import InvalidDicomError

from imaging.contours.files import read_ct_folder
from imaging.contours.maskio import MaskFileError, read_mask
from imaging.contours.rtstruct import rtstruct_to_mask
from imaging.geometry import Grid, grid_from_datasets
from panel_review.correction_metrics import compare

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_NRRD_FLIPS = {"left-posterior-superior": (1, 1, 1), "lps": (1, 1, 1), "right-anterior-superior": (-1, -1, 1),
               "ras": (-1, -1, 1), "left-anterior-superior": (1, -1, 1), "las": (1, -1, 1)}  # fmt: skip
SPEC_HELP = "a mask file (.nii, .nii.gz, .nrrd) or FILE.dcm:ROI@CT_DIR (one ROI of an RT Structure Set on its CT)"


def _file_grid(path: Path) -> Grid:
    """The voxel grid a mask file declares: its own axes, read as (slice, row, column) = file axes (k, j, i)."""
    name = path.name.lower()
    if not path.is_file():
        raise CommandError(f"{path}: no such file (expected {SPEC_HELP}).")
    try:
        if name.endswith((".nii", ".nii.gz")):
            image = nib.load(path)
            shape, affine = image.shape[:3], _LPS_TO_RAS @ image.affine
        elif name.endswith(".nrrd"):
            header = nrrd.read_header(str(path))
            flips = np.array(_NRRD_FLIPS.get(str(header.get("space", "")).lower(), (1, 1, 1)), dtype=float)
            affine = np.eye(4)
            affine[:3, :3] = (np.asarray(header["space directions"], dtype=float) * flips).T
            affine[:3, 3] = np.asarray(header["space origin"], dtype=float) * flips
            shape = tuple(int(s) for s in header["sizes"][:3])
        else:
            raise CommandError(f"{path}: unsupported mask file; use .nii, .nii.gz, .nrrd or FILE.dcm:ROI@CT_DIR.")
    except (OSError, ValueError, KeyError, nrrd.NRRDError, nib.filebasedimages.ImageFileError) as exc:
        raise CommandError(f"{path}: not a readable mask file ({exc}).") from exc
    if len(shape) < 3:
        raise CommandError(f"{path}: expected a 3-D mask, got shape {shape}.")
    return Grid(shape=(shape[2], shape[1], shape[0]), affine=affine, frame_of_reference_uid="",
                study_instance_uid="", series_instance_uid="", sop_instance_uids=())  # fmt: skip


def _rtstruct(spec: str) -> tuple[np.ndarray, Grid] | None:
    """Parse FILE.dcm:ROI@CT_DIR and rasterise that ROI; None when the spec is not of that form."""
    if "@" not in spec:
        return None
    left, ct_dir = spec.rsplit("@", 1)
    if ":" not in left:
        return None
    file, roi = left.rsplit(":", 1)
    if not file or not roi or not ct_dir:
        raise CommandError(f"{spec!r}: expected FILE.dcm:ROI@CT_DIR.")
    try:
        structure_set = pydicom.dcmread(file)
    except (InvalidDicomError, OSError) as exc:
        raise CommandError(f"{file}: not a readable DICOM file ({exc}).") from exc
    try:
        ct = read_ct_folder(ct_dir)
        grid, _ = grid_from_datasets(ct)
        return rtstruct_to_mask(structure_set, ct, roi), grid
    except ValueError as exc:  # RTStructError, CTFolderError, SeriesError
        raise CommandError(f"{spec}: {exc}") from exc


def _same_grid(a: Grid, b: Grid) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-3)


class Command(BaseCommand):
    help = (
        "Correction metrics from BEFORE (submitted or AI) to AFTER (approved or submitted): Dice, surface Dice, "
        "HD95, Hausdorff, mean surface distance, added path length, volumes, edited slices (docs/METRICS.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("before", help=f"BEFORE contour: {SPEC_HELP}.")
        parser.add_argument("after", help=f"AFTER contour: {SPEC_HELP}; on the same grid as BEFORE.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of a table.")

    def handle(self, *args, before, after, **options):
        loaded = {label: _rtstruct(spec) for label, spec in (("BEFORE", before), ("AFTER", after))}
        specs = {"BEFORE": before, "AFTER": after}
        grids = [pair[1] for pair in loaded.values() if pair is not None]
        if len(grids) == 2 and not _same_grid(*grids):
            raise CommandError("BEFORE and AFTER are drawn on different CT grids; compare contours on one CT.")
        grid = grids[0] if grids else _file_grid(Path(before))
        masks = {}
        for label, spec in specs.items():
            if loaded[label] is not None:
                masks[label] = loaded[label][0]
                continue
            try:
                masks[label] = read_mask(spec, grid)
            except MaskFileError as exc:
                other = "the CT of the structure set" if grids else "BEFORE"
                where = f" (not on the grid of {other})" if "grid" in str(exc) or "axes" in str(exc) else ""
                raise CommandError(f"{label}{where}: {exc}") from exc
        metrics = compare(masks["BEFORE"], masks["AFTER"], grid.spacing)
        values = metrics.as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(values, allow_nan=False))
            return
        for key, value in values.items():
            shown = ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) if isinstance(value, dict) else _fmt(value)
            self.stdout.write(f"{key:24} {shown}")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
