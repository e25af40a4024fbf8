"""Export a contour to the planning system as a re-identified RTSTRUCT (data managers)."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from imaging.contours.maskio import MaskFileError, read_mask
from imaging.export import load_series_datasets, planning_rtstruct, reference_ct, send_to_planning_system, write_file
from imaging.geometry import grid_from_datasets
from trial.models import Patient
from trial.services.errors import TrialError


class Command(BaseCommand):
    help = "Write (and optionally C-STORE) a re-identified RTSTRUCT of a mask on the patient's planning CT."

    def add_arguments(self, parser):
        parser.add_argument("patient", help="Trial number, e.g. HN-0001.")
        parser.add_argument("mask", type=Path, help="NIfTI or NRRD mask in the CT's patient space.")
        parser.add_argument("out", type=Path, help="Where to write the RTSTRUCT (.dcm).")
        parser.add_argument("--roi", default="GTV")
        parser.add_argument("--user", required=True, help="Username of the data manager doing the export.")
        parser.add_argument("--send", action="store_true", help="Also C-STORE it to the configured planning system.")

    def handle(self, *args, patient, mask, out, roi, user, send, **options):
        actor = get_user_model().objects.filter(username=user).first()
        target = Patient.objects.filter(trial_number=patient).first()
        if actor is None or target is None:
            raise CommandError(f"Unknown {'user ' + user if actor is None else 'patient ' + patient}.")
        try:
            grid, _ = grid_from_datasets(load_series_datasets(reference_ct(target)))
            rtstruct = planning_rtstruct(actor=actor, patient=target, mask=read_mask(mask, grid), roi_name=roi)
            write_file(rtstruct, out)
            if send:
                send_to_planning_system(rtstruct)
        except (TrialError, MaskFileError) as exc:
            raise CommandError(str(getattr(exc, "message", exc))) from exc
        self.stdout.write(self.style.SUCCESS(f"Wrote {out}{' and sent it' if send else ''}."))
