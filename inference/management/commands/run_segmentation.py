"""Run a registered model on a CT (+ PET) folder outside Celery: the same pipeline, files on the CT grid."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from imaging.contours.files import read_ct_folder
from imaging.contours.maskio import MaskFileError, check_file_type, write_map, write_mask
from imaging.dicom.volume import load_suv_volume, load_volume
from imaging.geometry import SeriesError
from inference.backends import CaseImages, ModelFileError
from inference.registry import load, resolve
from trial.services.errors import TrialError


def _pet_volume(folder: Path):
    import pydicom

    if not folder.is_dir():
        raise CommandError(f"{folder}: not a folder of PET .dcm files.")
    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    datasets = [ds for ds in datasets if ds.get("Modality") == "PT"]
    if not datasets:
        raise CommandError(f"{folder}: holds no PET images (*.dcm with modality PT).")
    return load_suv_volume(datasets)


class Command(BaseCommand):
    help = "Segment the GTV with a registered model; write the mask (and uncertainty) as NIfTI or NRRD on the CT grid."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="NAME or NAME:VERSION of a registered model.")
        parser.add_argument("--ct", required=True, type=Path, help="Folder of the planning CT .dcm files.")
        parser.add_argument("--pet", type=Path, help="Folder of the PET .dcm files (needed by PET/CT models).")
        parser.add_argument("--out", required=True, type=Path, help="Mask file: .nii, .nii.gz or .nrrd.")
        parser.add_argument("--uncertainty", type=Path, help="Uncertainty map (entropy, bits): .nii, .nii.gz, .nrrd.")
        parser.add_argument("--probability", type=Path, help="Probability map: .nii, .nii.gz or .nrrd.")
        parser.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when present).")

    def handle(self, *args, model, ct, pet, out, uncertainty, probability, device, **options):
        ct, pet, out, uncertainty, probability = (
            Path(p) if p else None for p in (ct, pet, out, uncertainty, probability)
        )
        try:
            for path in (out, uncertainty, probability):
                if path is not None:
                    check_file_type(path)
            version = resolve(model)
            ct_volume = load_volume(read_ct_folder(ct))
            pet_volume = _pet_volume(pet) if pet else None
            images = CaseImages(hu=ct_volume.array, ct_grid=ct_volume.grid,
                                suv=pet_volume.array if pet_volume else None,
                                pet_grid=pet_volume.grid if pet_volume else None)  # fmt: skip
            backend = load(version, device=device)
            stages = set()

            def progress(stage, fraction):
                if stage not in stages:
                    stages.add(stage)
                    self.stderr.write(f"{stage}…")

            proposal = backend.propose(images, progress=progress)
            write_mask(out, proposal.mask, ct_volume.grid)
            if uncertainty:
                write_map(uncertainty, proposal.uncertainty, ct_volume.grid)
            if probability:
                write_map(probability, proposal.probability, ct_volume.grid)
        except TrialError as exc:
            raise CommandError(exc.message) from exc
        except (ModelFileError, MaskFileError, SeriesError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        spacing = ct_volume.grid.spacing
        volume_ml = float(proposal.mask.sum()) * spacing[0] * spacing[1] * spacing[2] / 1000
        self.stdout.write(self.style.SUCCESS(
            f"{version}: GTV {volume_ml:.1f} ml, case uncertainty {proposal.case_uncertainty:.3f} "
            f"({proposal.members} {proposal.member_kind} members, {proposal.device}); wrote {out}"
        ))  # fmt: skip
