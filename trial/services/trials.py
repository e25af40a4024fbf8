"""Choosing the trial a request is about, and refusing changes to its data once the database is locked."""

from django.db import connection

from trial.models import Trial

from .errors import Conflict, InvalidInput


def default_trial(trial: Trial | None = None) -> Trial:
    if trial is not None:
        return trial
    open_trials = list(Trial.objects.filter(is_open=True)[:2])
    if len(open_trials) == 1:
        return open_trials[0]
    if not open_trials:
        raise InvalidInput("No trial is open.")
    raise InvalidInput("Several trials are open: name the trial.")


def require_unlocked(trial_id: int, action: str, hold: bool = True) -> None:
    """Refuse `action` once the trial's database is locked. Call it inside the transaction that changes the data:
    on PostgreSQL the trial row is held FOR KEY SHARE until that transaction ends, so the data manager's lock
    (which takes the row FOR UPDATE) waits for changes in flight and they wait for it. KEY SHARE conflicts with
    nothing else: changes never wait for each other, nor for enrolment and randomisation (which serialise on
    the row FOR NO KEY UPDATE). `hold=False` only reads (an early check before slow work)."""
    table = connection.ops.quote_name(Trial._meta.db_table)
    share = " FOR KEY SHARE" if hold and connection.vendor == "postgresql" else ""
    # One query on every autosave: the row read and locked at once (raw() still converts the values).
    sql = f"SELECT id, protocol_id, data_locked_at FROM {table} WHERE id = %s{share}"  # noqa: S608
    trial = next(iter(Trial.objects.raw(sql, [trial_id])), None)
    if trial is None:
        raise InvalidInput(f"There is no trial with id {trial_id}.")
    refuse_if_locked(trial, action)


def refuse_if_locked(trial: Trial, action: str) -> None:
    """The check alone, for callers that hold the trial row locked already (taking it FOR KEY SHARE first and
    then FOR UPDATE would let two of them deadlock upgrading their locks)."""
    if trial.data_locked_at is not None:
        raise Conflict(
            f"The database of {trial.protocol_id} was locked on {trial.data_locked_at:%Y-%m-%d %H:%M} UTC: "
            f"{action} is no longer possible."
        )
