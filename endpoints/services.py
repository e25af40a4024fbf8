"""Exports for statisticians, the signed database lock and the unblinding after it.

Blinded (A/B) exports for everyone entitled until a data manager unblinds after the lock; the export made at
lock is kept with its sha256 so the analysed data can be proven unchanged. Every export is audited.
"""

import hashlib
import tempfile
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from trial.audit.recorder import audit_context, record
from trial.models import Signature, Trial
from trial.roles import Role, is_blinded
from trial.services.access import require_role
from trial.services.errors import Conflict, InvalidInput, NotAllowed
from trial.services.signatures import check_password, sign

from . import dataset, formats
from .models import DataLock, Unblinding

READERS = (Role.STATISTICIAN, Role.DATA_MANAGER)


def require_reader(actor, action: str, *roles: Role) -> None:
    """Statisticians and data managers (or the roles given), never a blinded panel member holding such a role."""
    require_role(actor, *(roles or READERS), action=action)
    if is_blinded(actor):
        raise NotAllowed(f"Panel members are blinded to the arms and may not {action}.")


def is_unblinded(trial: Trial) -> bool:
    return Unblinding.objects.filter(trial=trial).exists()


def export(*, actor, trial: Trial, fmt: str, path: Path) -> Path:
    """Write the endpoint dataset (blinded unless unblinded after lock) and its codebook next to it."""
    require_reader(actor, "export endpoint data")
    if fmt not in formats.FORMATS:
        raise InvalidInput(f"Format {fmt!r} is not one of {', '.join(formats.FORMATS)}.")
    unblinded = is_unblinded(trial)
    frame, book = dataset.build(trial, unblinded=unblinded)
    written = formats.write(frame, book, fmt, path)
    formats.write_codebook(book, Path(path).with_name(Path(path).stem + "-codebook.csv"))
    record(action="export_endpoints", model="trial.trial", object_pk=trial.pk, object_repr=str(trial),
           changes={"format": [None, fmt], "rows": [None, len(frame)], "unblinded": [None, unblinded]},
           actor=actor, reveals_allocation=unblinded)  # fmt: skip
    return written


def export_events(*, actor, trial: Trial, fmt: str, path: Path) -> Path:
    """The raw interaction events in long format (one row per event), with their codebook."""
    require_reader(actor, "export the interaction events")
    if fmt not in formats.FORMATS:
        raise InvalidInput(f"Format {fmt!r} is not one of {', '.join(formats.FORMATS)}.")
    frame, book = dataset.events(trial)
    written = formats.write(frame, book, fmt, path)
    record(action="export_events", model="trial.trial", object_pk=trial.pk, object_repr=str(trial),
           changes={"format": [None, fmt], "rows": [None, len(frame)]}, actor=actor)  # fmt: skip
    return written


def lock(*, actor, trial: Trial, password: str) -> DataLock:
    """The data manager's signed lock; the blinded CSV export at that moment is stored with its sha256."""
    require_reader(actor, "lock the trial database", Role.DATA_MANAGER)
    if DataLock.objects.filter(trial=trial).exists():
        raise Conflict(f"{trial.protocol_id} is locked already.")
    check_password(actor, password, Signature.Meaning.LOCK)
    frame, book = dataset.build(trial, unblinded=False)
    with tempfile.TemporaryDirectory() as folder:
        blob = formats.write(frame, book, "csv", Path(folder) / "endpoints.csv").read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    name = default_storage.save(f"locks/{trial.protocol_id}-endpoints-{digest[:12]}.csv", ContentFile(blob))
    try:
        with transaction.atomic(), audit_context(actor):
            signature = sign(actor, Signature.Meaning.LOCK, f"trial.trial:{trial.pk}", {"sha256": digest})
            data_lock = DataLock(trial=trial, locked_by=actor, signature=signature, export_file=name,
                                 export_sha256=digest, rows=len(frame))  # fmt: skip
            data_lock.save()
    except BaseException:
        default_storage.delete(name)
        raise
    return data_lock


def unblind(*, actor, trial: Trial, password: str, reason: str) -> Unblinding:
    require_reader(actor, "unblind the arm labels", Role.DATA_MANAGER)
    if not reason.strip():
        raise InvalidInput("Give the reason for unblinding; it goes into the audit trail.")
    if not DataLock.objects.filter(trial=trial).exists():
        raise Conflict("The arm labels are unblinded only after the database is locked.")
    if is_unblinded(trial):
        raise Conflict(f"{trial.protocol_id} is unblinded already.")
    check_password(actor, password, Signature.Meaning.UNBLIND)
    with transaction.atomic(), audit_context(actor, reason=reason.strip()):
        signature = sign(actor, Signature.Meaning.UNBLIND, f"trial.trial:{trial.pk}", {"reason": reason.strip()})
        unblinding = Unblinding(trial=trial, unblinded_by=actor, signature=signature, reason=reason.strip())
        unblinding.save()
    return unblinding
