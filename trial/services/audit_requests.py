"""Who may read the audit trail, and the data manager's request to verify it in the background."""

from django.db import transaction

from trial import outbox
from trial.models import AuditEntry, AuditVerification, Trial
from trial.roles import Role, has_role, is_blinded

from .access import require_role


def audit_entries_visible_to(user):
    """Data managers and statisticians read the trail. Entries that reveal an arm never reach blinded users, and
    reach statisticians only when no trial is still blinded (the trail is not divided by trial)."""
    if not has_role(user, Role.DATA_MANAGER, Role.STATISTICIAN):
        return AuditEntry.objects.none()
    entries = AuditEntry.objects.all()
    if is_blinded(user):
        return entries.filter(reveals_allocation=False)
    if not has_role(user, Role.DATA_MANAGER) and Trial.objects.filter(arms_unblinded_at__isnull=True).exists():
        return entries.filter(reveals_allocation=False)
    return entries


def request_verification(actor) -> AuditVerification:
    from trial.tasks import verify_audit_chain

    require_role(actor, Role.DATA_MANAGER, action="verify the audit trail")
    with transaction.atomic():  # the request and its task commit together (the outbox sends it)
        run = AuditVerification.objects.create(requested_by=actor)
        outbox.enqueue(verify_audit_chain, run.pk)
    return run
