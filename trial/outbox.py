"""Transactional task outbox: every Celery task is sent through here.

Why: the broker (Redis) can be down while the database is up. Sent straight from a request, a task either held
the page while kombu retried or was lost after the change had committed. Here a task is a TaskOutbox row written
in the caller's transaction, so a rolled-back change sends nothing and a committed one is never lost. After the
commit one short attempt publishes it (never raising into the request); rows the broker did not take are
published by the relay (`relay`, run by Celery beat every OUTBOX_RELAY_SECONDS, when a worker starts, and by
`manage.py relay_outbox`), oldest first.

Delivery is at least once: a relay that stops between publishing a row and committing it as sent publishes it
again. Every task sent here is idempotent (it locks its row and checks its state), so a second copy does no
work twice. Rows are infrastructure, not trial data, and are not audited.
"""

import logging
import time
from datetime import timedelta

from celery import current_app
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError

from trial.models import TaskOutbox

log = logging.getLogger(__name__)

BATCH = 100
KEEP_SENT = timedelta(days=7)
# After a failed attempt this process leaves its new rows to the relay for a while, so that a dead broker costs
# one request one short attempt, not every request one.
PAUSE_AFTER_FAILURE_S = 10.0
_broker_down_until = 0.0


def enqueue(task, *args, options: dict | None = None, **kwargs) -> TaskOutbox:
    """Send `task(*args, **kwargs)` once the current transaction commits (at once outside one). `options` are
    apply_async options such as time limits; they must be JSON."""
    row = TaskOutbox.objects.create(task=task.name, args=list(args), kwargs=kwargs, options=options or {})
    transaction.on_commit(lambda: publish_now(row.pk), robust=True)
    return row


def publish_now(row_id: int) -> None:
    """The after-commit attempt: one try, no retries (a request waits for it); the relay publishes the row later
    if this does not."""
    if time.monotonic() < _broker_down_until:
        return
    _publish(TaskOutbox.objects.filter(pk=row_id), limit=1, retry=False)


def relay() -> int:
    """Publish the unsent rows, oldest first, until none is left or the broker fails; returns how many were sent.
    Concurrent relays skip each other's rows (SELECT … FOR UPDATE SKIP LOCKED), so none is published twice. A row
    that fails for another reason than the broker is passed over (it is tried again by the next relay), so it
    never holds back the rows behind it."""
    total, after = 0, 0
    while True:
        sent, last_pk, broker_up = _publish(TaskOutbox.objects.filter(pk__gt=after), limit=BATCH, retry=True)
        total += sent
        if last_pk is None or not broker_up:
            return total
        after = last_pk


def prune() -> int:
    """Forget rows sent more than KEEP_SENT ago (they stay a week for diagnosis)."""
    deleted, _ = TaskOutbox.objects.filter(sent_at__lt=timezone.now() - KEEP_SENT).delete()
    return deleted


def _publish(rows, limit: int, retry: bool) -> tuple[int, int | None, bool]:
    """Publish up to `limit` unsent rows among `rows`, oldest first, each marked sent in the transaction that
    locks it. Returns (rows sent, the last row's pk or None when there was none, whether the broker took
    everything it was offered)."""
    global _broker_down_until
    sent, last_pk = 0, None
    with transaction.atomic():
        unsent = rows.filter(sent_at__isnull=True).order_by("pk").select_for_update(skip_locked=True)[:limit]
        for row in unsent:
            last_pk = row.pk
            try:
                _send(row, retry)
            except Exception as exc:
                down = _broker_down(exc)
                if down:
                    _broker_down_until = time.monotonic() + PAUSE_AFTER_FAILURE_S
                    log.warning("broker unavailable, task %s left for the relay: %s", row, exc)
                else:  # not the broker: record it and go on, so one bad row does not hold back the others
                    log.exception("could not publish task %s", row)
                error = f"{type(exc).__name__}: {exc}"[:1000]
                TaskOutbox.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1, last_error=error)
                if down:
                    return sent, last_pk, False
                continue
            TaskOutbox.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1, sent_at=timezone.now())
            sent += 1
    if sent:
        _broker_down_until = 0.0
    return sent, last_pk, True


def _send(row: TaskOutbox, retry: bool) -> None:
    # signature(): the registered task's apply_async (so task_always_eager holds in tests), else send_task by name.
    # retry=True follows CELERY_TASK_PUBLISH_RETRY_POLICY; socket timeouts bound each try (settings).
    signature = current_app.signature(row.task, args=row.args, kwargs=row.kwargs)
    signature.apply_async(task_id=f"outbox-{row.pk}", retry=retry, **row.options)


def _broker_down(exc: Exception) -> bool:
    connection = current_app.connection_for_write()
    return isinstance(exc, (OperationalError, ConnectionError, TimeoutError, *connection.connection_errors))
