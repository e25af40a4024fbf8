"""Publish the tasks still waiting in the outbox (after a broker outage, without waiting for Celery beat)."""

from celery import current_app
from django.core.management.base import BaseCommand, CommandError

from trial import outbox
from trial.models import TaskOutbox


class Command(BaseCommand):
    help = "Publish the Celery tasks still waiting in the task outbox, oldest first."

    def handle(self, *args, **options):
        current_app.loader.import_default_modules()  # register every task, as a worker does
        sent = outbox.relay()
        waiting = TaskOutbox.objects.filter(sent_at__isnull=True).count()
        if waiting:
            raise CommandError(
                f"{sent} task(s) published; {waiting} still waiting. Is the broker (CELERY_BROKER_URL) reachable?"
            )
        self.stdout.write(self.style.SUCCESS(f"{sent} task(s) published; none waiting."))
