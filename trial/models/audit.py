"""Audit storage: the append-only entries, the chain head, and the base class of audited models."""

from django.db import models, transaction

from trial.audit import chain
from trial.audit.recorder import record_change, snapshot


class AppendOnlyError(Exception):
    pass


class AuditEntry(models.Model):
    """One change to trial data. Never updated or deleted (PostgreSQL enforces this with a trigger)."""

    seq = models.PositiveBigIntegerField(primary_key=True)
    timestamp = models.DateTimeField(db_index=True)
    actor_id = models.IntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150)
    action = models.CharField(max_length=32)
    model = models.CharField(max_length=100, db_index=True)
    object_pk = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(default=dict)
    reason = models.TextField(blank=True)
    reveals_allocation = models.BooleanField(default=False)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["model", "object_pk"])]

    def __str__(self):
        return f"#{self.seq} {self.action} {self.model} {self.object_pk}"

    def save(self, *args, **kwargs):
        raise AppendOnlyError("Audit entries are written only by trial.audit.recorder.record().")

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit entries cannot be deleted.")

    def as_chain_dict(self) -> dict:
        data = {name: getattr(self, name) for name in chain.HASHED_FIELDS}
        data["timestamp"] = self.timestamp.isoformat()
        data["prev_hash"] = self.prev_hash
        data["entry_hash"] = self.entry_hash
        return data


class AuditChainHead(models.Model):
    """The single row that serialises appends and remembers the newest hash."""

    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=chain.GENESIS)


class AuditVerification(models.Model):
    """A run of the chain verification requested by a data manager (done by a Celery worker)."""

    requested_by = models.ForeignKey("auth.User", on_delete=models.PROTECT)
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True)
    checked = models.PositiveBigIntegerField(default=0)
    first_broken_seq = models.PositiveBigIntegerField(null=True, blank=True)
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]


class AuditedQuerySet(models.QuerySet):
    """Bulk writes would skip the audit trail, so they are refused; deletes go through signals."""

    def update(self, **kwargs):
        raise AppendOnlyError(f"Bulk update of {self.model._meta.label} is not audited; save each object instead.")

    def bulk_create(self, *args, **kwargs):
        raise AppendOnlyError(f"Bulk create of {self.model._meta.label} is not audited; save each object instead.")

    def bulk_update(self, *args, **kwargs):
        raise AppendOnlyError(f"Bulk update of {self.model._meta.label} is not audited; save each object instead.")


class AuditedModel(models.Model):
    """Trial data: every create, update and delete is written to the audit trail in the same transaction.

    `audit_redact` names fields whose values never enter the trail (secrets);
    `audit_reveals_allocation` marks models whose entries blinded users must not see.
    """

    audit_redact: frozenset[str] = frozenset()
    audit_reveals_allocation = False

    objects = AuditedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        adding = self._state.adding
        with transaction.atomic():
            old = None
            if not adding:
                stored = type(self)._base_manager.filter(pk=self.pk).first()
                old = snapshot(stored) if stored is not None else None
            super().save(*args, **kwargs)
            record_change(self, "create" if adding or old is None else "update", old, snapshot(self))
