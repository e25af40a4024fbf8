"""Writes audit entries: who (from the audit context), when (UTC), what, old → new, why.

AuditedModel.save() and the post_delete signal call `record_change` inside the same transaction as
the change itself, so a change and its audit entry commit together or not at all.
"""

import contextvars
import json
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from . import chain

REDACTED = "«redacted»"


@dataclass(frozen=True)
class AuditContext:
    actor: object | None  # a User, or None for the system
    reason: str = ""


_context: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("audit_context", default=None)


@contextmanager
def audit_context(actor, reason: str = ""):
    """Attribute every audited change inside the block to `actor`, with an optional reason."""
    token = _context.set(AuditContext(actor=actor, reason=reason))
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> AuditContext:
    return _context.get() or AuditContext(actor=None)


def json_safe(value):
    """Turn a field value into plain JSON so that it hashes the same after a database round trip."""
    if isinstance(value, bytes | memoryview):
        return REDACTED
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(instance) -> dict:
    redact = getattr(instance, "audit_redact", frozenset())
    data = {}
    for field in instance._meta.concrete_fields:
        if field.primary_key:
            continue
        value = getattr(instance, field.attname)
        if isinstance(value, FieldFile):
            value = value.name  # the stored file's name; its content is identified by a hash field
        data[field.attname] = REDACTED if (field.name in redact and value is not None) else json_safe(value)
    return data


def diff(old: dict | None, new: dict | None) -> dict:
    old, new = old or {}, new or {}
    return {
        name: [old.get(name), new.get(name)] for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)
    }


def record(
    *,
    action: str,
    model: str,
    object_pk,
    object_repr: str,
    changes: dict,
    reveals_allocation: bool = False,
    reason: str | None = None,
    actor=None,
):
    """Append one entry to the chain. Serialises on the chain head row so the chain never forks."""
    from trial.models import AuditChainHead, AuditEntry

    context = current_context()
    actor = actor if actor is not None else context.actor
    actor_authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None:  # a database emptied by a flush; migrations create the head row otherwise
            AuditChainHead.objects.get_or_create(pk=1)
            head = AuditChainHead.objects.select_for_update().get(pk=1)
        entry = AuditEntry(
            seq=head.last_seq + 1,
            timestamp=timezone.now(),
            actor_id=actor.pk if actor_authenticated else None,
            actor_username=actor.get_username() if actor_authenticated else "system",
            action=action,
            model=model,
            object_pk=str(object_pk),
            object_repr=object_repr[:200],
            changes=changes,
            reason=reason if reason is not None else context.reason,
            reveals_allocation=reveals_allocation,
            prev_hash=head.last_hash,
        )
        entry.entry_hash = chain.entry_hash(entry.as_chain_dict(), head.last_hash)
        AuditEntry.objects.bulk_create([entry])
        head.last_seq, head.last_hash = entry.seq, entry.entry_hash
        head.save(update_fields=["last_seq", "last_hash"])
    return entry


def record_change(instance, action: str, old: dict | None, new: dict | None) -> None:
    changes = diff(old, new)
    if action == "update" and not changes:
        return
    record(
        action=action,
        model=instance._meta.label_lower,
        object_pk=instance.pk,
        object_repr=str(instance),
        changes=changes,
        reveals_allocation=getattr(instance, "audit_reveals_allocation", False),
    )
