"""Write (and optionally send) the panel-approved GTV as a re-identified RTSTRUCT for the planning system."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from imaging.export import send_to_planning_system, write_file
from panel_review.export import approved_rtstruct
from trial.models import Patient
from trial.services.errors import TrialError


class Command(BaseCommand):
    help = "Export the panel-approved GTV of a patient as a re-identified RTSTRUCT (data managers)."

    def add_arguments(self, parser):
        parser.add_argument("patient", help="Trial number, e.g. HN-0001.")
        parser.add_argument("out", type=Path, help="Where to write the RTSTRUCT (.dcm).")
        parser.add_argument("--user", required=True, help="Username of the data manager doing the export.")
        parser.add_argument("--send", action="store_true", help="Also C-STORE it to the configured planning system.")

    def handle(self, *args, patient, out, user, send, **options):
        actor = get_user_model().objects.filter(username=user).first()
        target = Patient.objects.filter(trial_number=patient).first()
        if actor is None or target is None:
            raise CommandError(f"Unknown {'user ' + user if actor is None else 'patient ' + patient}.")
        try:
            rtstruct = approved_rtstruct(actor=actor, patient=target)
            write_file(rtstruct, out)
            if send:
                send_to_planning_system(rtstruct)
        except TrialError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Wrote {out}{' and sent it' if send else ''}."))
