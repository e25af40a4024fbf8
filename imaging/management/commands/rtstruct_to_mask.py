"""Rasterise one ROI of an RTSTRUCT onto its CT grid and write it as a NIfTI or NRRD mask."""

from pathlib import Path

import pydicom
from django.core.management.base import BaseCommand, CommandError
from pydicom.errors import InvalidDicomError

from imaging.contours.files import read_ct_folder
from imaging.contours.maskio import write_mask
from imaging.contours.rtstruct import rtstruct_to_mask
from imaging.geometry import grid_from_datasets


class Command(BaseCommand):
    help = "Convert one ROI of an RT Structure Set to a binary mask (.nii, .nii.gz or .nrrd) on the CT's grid."

    def add_arguments(self, parser):
        parser.add_argument("rtstruct", type=Path, help="RT Structure Set file (.dcm).")
        parser.add_argument("ct_dir", type=Path, help="Folder of the CT .dcm files the structure set was drawn on.")
        parser.add_argument("out", type=Path, help="Mask file to write: .nii, .nii.gz or .nrrd.")
        parser.add_argument("--roi", required=True, help="ROI name, e.g. GTV.")

    def handle(self, *args, rtstruct, ct_dir, out, roi, **options):
        try:
            structure_set = pydicom.dcmread(rtstruct)
        except (InvalidDicomError, OSError) as exc:
            raise CommandError(f"{rtstruct}: not a readable DICOM file ({exc}).") from exc
        try:
            ct = read_ct_folder(ct_dir)
            grid, _ = grid_from_datasets(ct)
            mask = rtstruct_to_mask(structure_set, ct, roi)
            write_mask(out, mask, grid)  # written to a temporary name, renamed when complete
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"Cannot write {out}: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"Wrote {out}: ROI {roi!r}, {int(mask.sum())} voxels."))
