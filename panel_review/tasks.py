"""Celery: measure the panel's corrections once a case is approved, and reconcile the review work periodically.
The tasks only orchestrate."""

from celery import shared_task
from django.db import OperationalError

from . import measurements, services


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=10)
def measure_corrections(self, case_id: int) -> int:
    try:
        return len(measurements.measure(case_id))
    except OperationalError as exc:  # the database was unreachable: try again
        raise self.retry(exc=exc) from exc


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=30)
def reconcile_reviews(self) -> dict:
    """Run by Celery beat (CELERY_BEAT_SCHEDULE) and when panel membership changes; idempotent."""
    try:
        return services.reconcile()
    except OperationalError as exc:
        raise self.retry(exc=exc) from exc
