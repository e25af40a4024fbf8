"""Write a synthetic head-and-neck PET/CT phantom (CT, PET, true GTV as NIfTI and RTSTRUCT) to a folder."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from imaging.phantom.writer import write_phantom


class Command(BaseCommand):
    help = "Generate phantom patient SEED: ct/, pet/, gtv.nii.gz, gtv_rtstruct.dcm and summary.json in OUTDIR."

    def add_arguments(self, parser):
        parser.add_argument("outdir", type=Path)
        parser.add_argument("--seed", type=int, required=True, help="Phantom patient number (same seed, same images).")
        parser.add_argument("--rows", type=int, default=512, help="CT matrix size (rows = columns); default 512.")
        parser.add_argument("--slices", type=int, default=None, help="CT slices, centred on the tumour (default: the "
                            "seed's own 120–160).")  # fmt: skip

    def handle(self, *args, outdir: Path, seed: int, rows: int, slices: int | None, **options):
        if not 16 <= rows <= 1024:
            raise CommandError(f"--rows must be between 16 and 1024, not {rows}.")
        if slices is not None and not 1 <= slices <= 1000:
            raise CommandError(f"--slices must be between 1 and 1000, not {slices}.")
        if outdir.exists() and not outdir.is_dir():
            raise CommandError(f"{outdir} exists and is not a folder; give a folder to write the phantom into.")
        try:
            files = write_phantom(outdir, seed, rows=rows, slices=slices)
        except OSError as exc:
            raise CommandError(f"Cannot write the phantom into {outdir}: {exc.strerror or exc}.") from exc
        summary = files.summary
        ct, pet = summary["ct"], summary["pet"]
        lesions = ", ".join(f"{item['kind']} ({item['site']}, {item['volume_cm3']:g} cm³, SUVmax {item['suv_max']:g})"
                            for item in summary["lesions"])  # fmt: skip
        self.stdout.write(
            f"CT: {ct['slices']} slices of {ct['rows']}×{ct['columns']}, {ct['pixel_spacing_mm']:g} mm pixels, "
            f"{ct['slice_thickness_mm']:g} mm slices → {files.ct_dir}\n"
            f"PET: {pet['slices']} slices of {pet['rows']}×{pet['columns']}, {pet['pixel_spacing_mm']:g} mm pixels, "
            f"{pet['slice_thickness_mm']:g} mm slices → {files.pet_dir}\n"
            f"GTV: {summary['gtv_volume_cm3']:g} cm³ in {len(summary['lesions'])} lesion(s): {lesions}; "
            f"SUVmax {summary['suv_max']:g} → {files.gtv_nifti}, {files.rtstruct}"
        )
        self.stdout.write(self.style.SUCCESS(f"Phantom {seed} written to {outdir}."))
