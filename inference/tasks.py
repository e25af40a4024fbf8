"""Celery: the AI proposal runs on the `inference` queue. The task only orchestrates (runner does the work)."""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from trial import outbox

from . import runner

log = logging.getLogger(__name__)
TRANSIENT = (OperationalError, InterfaceError, BrokerError, ConnectionError, TimeoutError)


@shared_task(
    name="inference.propose_gtv", bind=True, acks_late=True, reject_on_worker_lost=True,
    soft_time_limit=settings.INFERENCE_TIME_LIMIT_S, time_limit=settings.INFERENCE_TIME_LIMIT_S + 60,
    max_retries=settings.INFERENCE_MAX_RETRIES,
)  # fmt: skip
def propose_gtv(self, job_id: int) -> str:
    try:
        return runner.run(job_id, worker=self.request.hostname or "")
    except SoftTimeLimitExceeded:
        limit = (self.request.timelimit or (None, None))[1] or settings.INFERENCE_TIME_LIMIT_S
        runner.fail(job_id, f"Stopped after the time limit of {limit:g} s.")
        return "timed out"
    except TRANSIENT as exc:
        if self.request.retries >= self.max_retries:
            runner.fail(job_id, f"Gave up after {self.max_retries} retries; last error: {exc}")
            return "failed"
        log.warning("AI proposal job %s: transient error, retrying: %s", job_id, exc)
        raise self.retry(exc=exc, countdown=min(60, 5 * 2**self.request.retries)) from exc
    except Exception as exc:  # a bad series, a model that cannot load: record why, do not retry
        log.exception("AI proposal job %s failed", job_id)
        runner.fail(job_id, f"{type(exc).__name__}: {exc}")
        return "failed"


def send(job_id: int) -> None:
    """Queue a job through the task outbox, in the caller's transaction, with the time limits of the current
    settings (they travel in the message)."""
    limit = settings.INFERENCE_TIME_LIMIT_S
    outbox.enqueue(propose_gtv, job_id, options={"soft_time_limit": limit, "time_limit": limit + 60})


def resend_orphaned(hostname: str) -> list[int]:
    """Re-send the jobs marked running by a worker of this name (it died with them); returns their ids."""
    from .models import InferenceJob

    if not hostname:
        return []
    ids = list(
        InferenceJob.objects.filter(status=InferenceJob.Status.RUNNING, worker=hostname).values_list("pk", flat=True)
    )
    for job_id in ids:
        log.warning("job %s was running on %s when it stopped; sending it again", job_id, hostname)
        send(job_id)
    return ids
