"""Celery: measure the panel's corrections once a case is approved. The task only orchestrates."""

from celery import shared_task
from django.db import OperationalError

from . import measurements


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=10)
def measure_corrections(self, case_id: int) -> int:
    try:
        return len(measurements.measure(case_id))
    except OperationalError as exc:  # the database was unreachable: try again
        raise self.retry(exc=exc) from exc
