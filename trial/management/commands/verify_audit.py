"""Recompute the audit hash chain; exit non-zero naming the first broken entry."""

from django.core.management.base import BaseCommand, CommandError

from trial.audit.verify import verify_stored_chain


class Command(BaseCommand):
    help = "Verify the append-only audit trail's hash chain."

    def handle(self, *args, **options):
        result = verify_stored_chain()
        if not result.ok:
            raise CommandError(f"Audit chain broken at entry #{result.first_broken_seq}: {result.problem}.")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {result.checked} entries verified."))
