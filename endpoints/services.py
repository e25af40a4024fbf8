"""Exports for statisticians, the signed database lock and the unblinding after it.

Blinded (A/B) exports for everyone entitled until a data manager unblinds after the lock. The lock seals the
full endpoint frame (Parquet, with its sha256) and keeps the blinded CSV made at that moment (with its sha256);
from then on no service changes the trial's data (trial.services.trials.require_unlocked) and every export and
report is derived from the sealed frame, checked against its hash, so what is analysed is what was locked.
Every export is audited.
"""

import hashlib
import tempfile
from pathlib import Path

import pandas as pd
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from panel_review.services import unmeasured_cases
from trial.audit.recorder import audit_context, record
from trial.models import Signature, Trial
from trial.roles import Role, is_blinded
from trial.services.access import require_role
from trial.services.errors import Conflict, InvalidInput, NotAllowed
from trial.services.signatures import check_password, sign

from . import dataset, formats
from .codebook import Codebook
from .models import DataLock, Unblinding

READERS = (Role.STATISTICIAN, Role.DATA_MANAGER)


def require_reader(actor, action: str, *roles: Role) -> None:
    """Statisticians and data managers (or the roles given), never a blinded panel member holding such a role."""
    require_role(actor, *(roles or READERS), action=action)
    if is_blinded(actor):
        raise NotAllowed(f"Panel members are blinded to the arms and may not {action}.")


def is_unblinded(trial: Trial) -> bool:
    return Unblinding.objects.filter(trial=trial).exists()


def endpoint_frame(trial: Trial, unblinded: bool) -> tuple[pd.DataFrame, Codebook]:
    """The dataset statisticians get: from the live data before the lock, from the sealed frame after it."""
    data_lock = DataLock.objects.filter(trial=trial).first()
    if data_lock is None:
        return dataset.build(trial, unblinded=unblinded)
    full = sealed_frame(data_lock)
    if unblinded:
        return full, dataset.codebook(trial, unblinded=True)
    return dataset.blinded(trial, full)


def sealed_frame(data_lock: DataLock) -> pd.DataFrame:
    """The full frame sealed at lock, refused if its bytes no longer have the sha256 recorded at lock."""
    with default_storage.open(data_lock.sealed_file.name, "rb") as handle:
        blob = handle.read()
    if hashlib.sha256(blob).hexdigest() != data_lock.sealed_sha256:
        raise Conflict(
            f"The endpoint data sealed at the lock of {data_lock.trial.protocol_id} ({data_lock.sealed_file.name}) "
            "no longer match the sha256 recorded at lock; restore the file from the backup before any analysis."
        )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sealed.parquet"
        path.write_bytes(blob)
        return formats.read("parquet", path, dataset.codebook(data_lock.trial, unblinded=True))


def export(*, actor, trial: Trial, fmt: str, path: Path) -> Path:
    """Write the endpoint dataset (blinded unless unblinded after lock) and its codebook next to it."""
    require_reader(actor, "export endpoint data")
    if fmt not in formats.FORMATS:
        raise InvalidInput(f"Format {fmt!r} is not one of {', '.join(formats.FORMATS)}.")
    unblinded = is_unblinded(trial)
    frame, book = endpoint_frame(trial, unblinded=unblinded)
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
    """The data manager's signed lock. Under the trial's row lock (changes in flight finish first, later ones are
    refused) the full frame is sealed as Parquet and the blinded CSV of that moment kept, each with its sha256.
    Refused while an approved case still waits for its correction metrics."""
    require_reader(actor, "lock the trial database", Role.DATA_MANAGER)
    if DataLock.objects.filter(trial=trial).exists():
        raise Conflict(f"{trial.protocol_id} is locked already.")
    check_password(actor, password, Signature.Meaning.LOCK)
    written: list[str] = []
    try:
        with transaction.atomic(), audit_context(actor):
            trial = Trial.objects.select_for_update().get(pk=trial.pk)
            if trial.data_locked_at is not None:
                raise Conflict(f"{trial.protocol_id} is locked already.")
            _refuse_unmeasured(trial)
            full = dataset.build_full(trial)
            blinded, book = dataset.blinded(trial, full)
            sealed_name, sealed_digest = _store(trial, "sealed", "parquet", full, dataset.codebook(trial, True))
            written.append(sealed_name)
            export_name, export_digest = _store(trial, "endpoints", "csv", blinded, book)
            written.append(export_name)
            content = {"sha256": export_digest, "sealed_sha256": sealed_digest, "rows": len(full)}
            signature = sign(actor, Signature.Meaning.LOCK, f"trial.trial:{trial.pk}", content)
            data_lock = DataLock(trial=trial, locked_by=actor, signature=signature, export_file=export_name,
                                 export_sha256=export_digest, sealed_file=sealed_name, sealed_sha256=sealed_digest,
                                 rows=len(full))  # fmt: skip
            data_lock.save()
            trial.data_locked_at = data_lock.locked_at
            trial.save()
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise
    return data_lock


def _refuse_unmeasured(trial: Trial) -> None:
    waiting = sorted(unmeasured_cases().filter(patient__trial=trial).values_list("patient__trial_number", flat=True))
    if waiting:
        raise Conflict(
            f"The correction metrics of {', '.join(waiting)} are not stored yet (the measurement is queued or "
            "failed; see the data manager dashboard). Lock once every approved case is measured."
        )


def _store(trial: Trial, what: str, fmt: str, frame: pd.DataFrame, book: Codebook) -> tuple[str, str]:
    """Write `frame` as `fmt` into storage under locks/, named with its sha256; returns (name, sha256)."""
    with tempfile.TemporaryDirectory() as folder:
        blob = formats.write(frame, book, fmt, Path(folder) / f"{what}.{fmt}").read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    name = default_storage.save(f"locks/{trial.protocol_id}-{what}-{digest[:12]}.{fmt}", ContentFile(blob))
    return name, digest


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
        trial = Trial.objects.select_for_update().get(pk=trial.pk)
        if is_unblinded(trial):
            raise Conflict(f"{trial.protocol_id} is unblinded already.")
        signature = sign(actor, Signature.Meaning.UNBLIND, f"trial.trial:{trial.pk}", {"reason": reason.strip()})
        unblinding = Unblinding(trial=trial, unblinded_by=actor, signature=signature, reason=reason.strip())
        unblinding.save()
        trial.arms_unblinded_at = unblinding.unblinded_at
        trial.save()
    return unblinding
