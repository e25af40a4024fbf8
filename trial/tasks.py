"""Background work of the trial core. Tasks orchestrate; the logic lives in trial.audit."""

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from trial.audit.verify import verify_stored_chain
from trial.models import AuditVerification


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
