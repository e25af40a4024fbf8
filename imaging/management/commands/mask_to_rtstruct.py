"""Turn a NIfTI or NRRD mask on a CT's grid into an RT Structure Set referencing that CT."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from imaging.contours.files import read_ct_folder, save_dataset
from imaging.contours.maskio import read_mask
from imaging.contours.rtstruct import mask_to_rtstruct
from imaging.geometry import grid_from_datasets


def _color(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise CommandError(f"--color {text!r}: give three numbers 0-255 separated by commas, e.g. 255,0,0.")
    return values


class Command(BaseCommand):
    help = "Convert a binary mask (.nii, .nii.gz or .nrrd) on a CT's grid to an RTSTRUCT (.dcm) on that CT."

    def add_arguments(self, parser):
        parser.add_argument("mask", type=Path, help="Mask file in the CT's patient space: .nii, .nii.gz or .nrrd.")
        parser.add_argument("ct_dir", type=Path, help="Folder of the CT .dcm files.")
        parser.add_argument("out", type=Path, help="RT Structure Set file to write (.dcm).")
        parser.add_argument("--roi", required=True, help="ROI name to give the structure, e.g. GTV.")
        parser.add_argument("--color", default="255,0,0", help="Display colour R,G,B (default 255,0,0).")

    def handle(self, *args, mask, ct_dir, out, roi, color, **options):
        if out.suffix.lower() != ".dcm":
            raise CommandError(f"{out.name}: the structure set is written as a DICOM file; name it *.dcm.")
        try:
            ct = read_ct_folder(ct_dir)
            grid, _ = grid_from_datasets(ct)
            rtstruct = mask_to_rtstruct(read_mask(mask, grid), ct, roi, color=_color(color))
            save_dataset(rtstruct, out)  # written to a temporary name, renamed when complete
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"Cannot write {out}: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"Wrote {out}: ROI {roi!r} on {len(ct)} CT slices."))
