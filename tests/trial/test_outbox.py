"""The transactional task outbox against a real Redis that the tests stop and start (a private one): a rolled-back
change sends nothing, a committed one is published once, a dead broker leaves the row for the relay without
holding the request, and two relays never publish the same row."""

import json
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from inference.tasks import send as send_inference
from tests.conftest import World
from tests.reliability.redis_server import broker_of_this_process, private_redis
from trial import outbox
from trial.models import AuditVerification, TaskOutbox
from trial.services.audit_requests import request_verification
from trial.tasks import verify_audit_chain

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def redis_server():
    with private_redis() as server:
        yield server


@pytest.fixture
def broker(redis_server):
    if redis_server.process is None:
        redis_server.start()
    redis_server.client().flushdb()
    with broker_of_this_process(redis_server.url):
        yield redis_server
    outbox._broker_down_until = 0.0  # this process's pause after a failure must not reach other tests


def queued(server, queue="default") -> list[str]:
    """Task ids waiting in a queue, oldest first (kombu LPUSHes; workers BRPOP)."""
    return [json.loads(raw)["headers"]["id"] for raw in reversed(server.client().lrange(queue, 0, -1))]


def test_a_rolled_back_change_sends_nothing_and_a_committed_one_is_sent_once(broker):
    world = World()
    TaskOutbox.objects.all().delete()  # World's panel member asked for a reconciliation; not under test here
    broker.client().flushdb()
    with pytest.raises(RuntimeError), transaction.atomic():
        request_verification(world.data_manager)
        send_inference(12345)
        raise RuntimeError("the change fails after asking for its tasks")
    assert not TaskOutbox.objects.exists() and not AuditVerification.objects.exists()
    assert queued(broker) == [] and queued(broker, "inference") == []

    run = request_verification(world.data_manager)
    with transaction.atomic():
        send_inference(12345)
        assert queued(broker, "inference") == [], "nothing leaves before the commit"
    verification, job = TaskOutbox.objects.order_by("pk")
    assert (verification.task, verification.args) == (verify_audit_chain.name, [run.pk])
    assert job.task == "inference.propose_gtv" and job.options["time_limit"] == job.options["soft_time_limit"] + 60
    assert verification.sent_at and job.sent_at and verification.attempts == job.attempts == 1
    assert queued(broker) == [f"outbox-{verification.pk}"] and queued(broker, "inference") == [f"outbox-{job.pk}"]
    assert outbox.relay() == 0 and queued(broker) == [f"outbox-{verification.pk}"]


def test_a_dead_broker_leaves_the_tasks_for_the_relay_and_the_request_does_not_wait(broker):
    world = World()
    TaskOutbox.objects.all().delete()
    api = world.client(world.data_manager)
    assert api.get("/api/v1/audit/verifications/").status_code == 200  # warm: URLs and views imported
    broker.stop()
    took = []
    for _ in range(3):
        began = time.monotonic()
        assert api.post("/api/v1/audit/verifications/").status_code == 202
        took.append(time.monotonic() - began)
    assert max(took) < 1.0, f"requests took {took} s with the broker down"
    first, *later = TaskOutbox.objects.order_by("pk")
    assert TaskOutbox.objects.filter(sent_at__isnull=True).count() == 3
    assert first.attempts == 1 and "Connection refused" in first.last_error
    assert all(row.attempts == 0 for row in later), "after a failure the process leaves new rows to the relay"
    with pytest.raises(CommandError, match="3 still waiting"):
        call_command("relay_outbox")

    broker.start()
    call_command("relay_outbox")  # what an operator runs; Celery beat runs the same relay
    rows = list(TaskOutbox.objects.order_by("pk"))
    assert all(row.sent_at for row in rows)
    assert queued(broker) == [f"outbox-{row.pk}" for row in rows], "oldest first"
    assert outbox.relay() == 0 and len(queued(broker)) == 3, "a sent row is never sent again"


def test_two_relays_never_publish_the_same_row(broker):
    def rows(n):
        return TaskOutbox.objects.bulk_create(TaskOutbox(task=verify_audit_chain.name, args=[i]) for i in range(n))

    # A row that another relay holds (locked, being published) is skipped, not waited for and not sent twice.
    held, *others = rows(20)
    locked, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            TaskOutbox.objects.select_for_update().get(pk=held.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    assert outbox.relay() == len(others)
    release.set()
    holder.join()
    assert outbox.relay() == 1

    # Two relays at once share the rows between them.
    rows(200)
    start, counts = threading.Barrier(2), []

    def relay():
        start.wait()
        counts.append(outbox.relay())
        connection.close()

    relays = [threading.Thread(target=relay) for _ in range(2)]
    for thread in relays:
        thread.start()
    for thread in relays:
        thread.join()
    assert sum(counts) == 200
    ids = queued(broker)
    assert len(ids) == len(set(ids)) == TaskOutbox.objects.count() == 220
    assert not TaskOutbox.objects.filter(sent_at__isnull=True).exists()


def test_rows_that_cannot_be_published_do_not_hold_back_the_rows_behind_them(broker):
    TaskOutbox.objects.all().delete()
    broken = TaskOutbox.objects.bulk_create(
        TaskOutbox(task=verify_audit_chain.name, args=[i], options={"countdown": "soon"})
        for i in range(outbox.BATCH + 5)
    )  # not the broker's fault: apply_async refuses the option, every time
    good = TaskOutbox.objects.bulk_create(TaskOutbox(task=verify_audit_chain.name, args=[i]) for i in range(3))
    assert outbox.relay() == 3
    assert queued(broker) == [f"outbox-{row.pk}" for row in good]
    assert TaskOutbox.objects.filter(
        pk__in=[row.pk for row in broken], sent_at__isnull=True, attempts=1
    ).count() == len(broken)
