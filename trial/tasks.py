"""Background work of the trial core. Tasks orchestrate; the logic lives in trial.audit and trial.outbox."""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import transaction
from django.utils import timezone

from trial import outbox
from trial.audit.verify import verify_stored_chain
from trial.models import AuditVerification

log = logging.getLogger(__name__)


@shared_task(name="trial.verify_audit_chain", acks_late=True)
def verify_audit_chain(verification_id: int) -> bool:
    with transaction.atomic():
        run = AuditVerification.objects.select_for_update().get(pk=verification_id)
        if run.finished_at is not None:
            return bool(run.ok)  # idempotent: a redelivered task does not run twice
        result = verify_stored_chain()
        run.ok, run.checked = result.ok, result.checked
        run.first_broken_seq, run.problem = result.first_broken_seq, result.problem
        run.finished_at = timezone.now()
        run.save()
    return result.ok


@shared_task(name="trial.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    """Celery beat runs this every OUTBOX_RELAY_SECONDS: tasks whose publishing failed (broker down) go out now."""
    sent = outbox.relay()
    outbox.prune()
    return sent


@worker_ready.connect(dispatch_uid="trial-relay-outbox")
def relay_when_a_worker_starts(sender, **kwargs):
    """A worker that (re)starts after a broker outage sends what waited, without waiting for beat."""
    try:
        outbox.relay()
    except Exception:  # the worker must start even when the relay cannot run now; beat tries again
        log.exception("relaying the task outbox at worker start failed")
