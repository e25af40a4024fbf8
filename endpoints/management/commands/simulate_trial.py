"""Run synthetic patients through every real stage of the trial (see endpoints/simulation.py)."""

from django.core.management.base import BaseCommand, CommandError

from endpoints.simulation import simulate
from trial.models import Trial


class Command(BaseCommand):
    help = "Simulate N patients through enrolment, images, AI, delineation, panel review and metrics (demo users)."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--trial", default="CT-HN-DEMO", help="Protocol id (default: the demo trial).")
        parser.add_argument("--rows", type=int, default=128, help="Phantom CT matrix (512 for full size).")
        parser.add_argument("--slices", type=int, default=40, help="Phantom CT slices (0: the phantom's own).")

    def handle(self, *args, patients, seed, trial, rows, slices, **options):
        found = Trial.objects.filter(protocol_id=trial).first()
        if found is None:
            raise CommandError(f"No trial {trial}; run `python manage.py seed_demo` first (it makes the demo users).")
        if patients < 1:
            raise CommandError("--patients must be at least 1.")
        done = simulate(found, patients, seed, rows=rows, slices=slices or None, log=self.stdout.write)
        approved = sum(p.approved for p in done)
        self.stdout.write(self.style.SUCCESS(f"Simulated {len(done)} patients; {approved} GTVs approved."))
