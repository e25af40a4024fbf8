"""Write the endpoint dataset (one row per randomised patient) and its codebook."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from endpoints import formats, services
from trial.services.errors import TrialError
from trial.services.trials import default_trial


class Command(BaseCommand):
    help = "Export the endpoint data (blinded A/B until unblinded after lock) with its codebook beside it."

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=formats.FORMATS)
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--user", required=True, help="Username of the statistician or data manager.")

    def handle(self, *args, format, out, user, **options):
        actor = get_user_model().objects.filter(username=user).first()
        if actor is None:
            raise CommandError(f"Unknown user {user}.")
        try:
            written = services.export(actor=actor, trial=default_trial(), fmt=format, path=out)
        except TrialError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Wrote {written} and its codebook."))
