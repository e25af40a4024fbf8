"""Write the statisticians' analysis report (HTML, PDF and the figures) into a folder."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from endpoints import report
from trial.services.errors import TrialError
from trial.services.trials import default_trial


class Command(BaseCommand):
    help = "Analysis report of the open trial (blinded A/B until unblinded after lock): report.html, report.pdf, PNGs."

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, type=Path, help="Folder to write into (created if missing).")
        parser.add_argument("--user", required=True, help="Username of the statistician or data manager.")

    def handle(self, *args, out, user, **options):
        actor = get_user_model().objects.filter(username=user).first()
        if actor is None:
            raise CommandError(f"Unknown user {user}.")
        try:
            html = report.generate(actor=actor, trial=default_trial(), out_dir=out)
        except TrialError as exc:
            raise CommandError(exc.message) from exc
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Wrote {html} and {html.with_suffix('.pdf').name} in {out}."))
