"""Acceptance: 50 concurrent randomisations on the real PostgreSQL, then the audit chain, then tampering."""

import os
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, connections

from tests.conftest import PASSWORD, World, enrol
from trial.models import Allocation, AuditEntry, RandomisationSecret
from trial.randomisation import BalanceState, allocate
from trial.services.randomisation import randomise

pytestmark = [pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
STRATA = [("oropharynx", "T1-2"), ("oropharynx", "T3-4"), ("larynx", "T1-2"), ("larynx", "T3-4")]


def _randomise_concurrently(world, patients) -> list[Exception]:
    errors, start = [], threading.Barrier(len(patients))

    def work(patient):
        try:
            start.wait()
            randomise(actor=world.coordinator, patient=patient, password=PASSWORD)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(p,)) for p in patients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def _manage(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    settings = connection.settings_dict
    env["DATABASE_URL"] = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("method", ["blocks", "minimisation"])
def test_fifty_concurrent_randomisations_are_distinct_balanced_and_audited(method):
    world = World(method)
    patients = [
        enrol(world.trial, world.coordinator, world.physician, f"C{i:03d}", subsite=s, t_stage=t)
        for i, (s, t) in enumerate(STRATA[i % len(STRATA)] for i in range(50))
    ]
    errors = _randomise_concurrently(world, patients)
    assert errors == []

    allocations = list(Allocation.objects.order_by("sequence_number"))
    assert len(allocations) == 50
    assert sorted(a.sequence_number for a in allocations) == list(range(1, 51))
    assert len({a.patient_id for a in allocations}) == 50
    assert len({(a.stratum_key, a.stratum_position) for a in allocations}) == 50

    # Replaying the allocation code serially in sequence order gives the same arms: no slot was used twice.
    secret = RandomisationSecret.objects.get(trial=world.trial)
    design, state = world.trial.design(secret.block_sizes), BalanceState()
    for allocation in allocations:
        decision = allocate(design, bytes(secret.seed), state, allocation.strata)
        assert (decision.arm, decision.stratum_position) == (allocation.arm, allocation.stratum_position)
        state.record(allocation.strata, decision.stratum_key, decision.arm)

    if method == "blocks":
        running = defaultdict(lambda: {"ai": 0, "manual": 0})
        for allocation in allocations:
            running[allocation.stratum_key][allocation.arm] += 1
            counts = running[allocation.stratum_key]
            assert abs(counts["ai"] - counts["manual"]) <= max(design.block_sizes) // 2

    result = _manage("verify_audit")
    assert result.returncode == 0, result.stderr
    assert "Audit chain intact" in result.stdout
    assert AuditEntry.objects.filter(model="trial.allocation", action="create").count() == 50


def test_tampering_with_one_audit_row_makes_verify_audit_fail_naming_it():
    world = World()
    for i in range(3):
        randomise(actor=world.coordinator, patient=enrol(world.trial, world.coordinator, world.physician, f"T{i}"),
                  password=PASSWORD)  # fmt: skip
    call_command("verify_audit")
    target = AuditEntry.objects.filter(model="trial.allocation").order_by("seq")[1]

    with connection.cursor() as cursor, pytest.raises(DatabaseError, match="append-only"):
        cursor.execute("UPDATE trial_auditentry SET reason = 'edited' WHERE seq = %s", [target.seq])
    connection.close()

    with connection.cursor() as cursor:  # a superuser who switches the guard off
        cursor.execute("ALTER TABLE trial_auditentry DISABLE TRIGGER trial_auditentry_append_only")
        cursor.execute(
            "UPDATE trial_auditentry SET changes = jsonb_set(changes, '{arm,1}', '\"forged\"') WHERE seq = %s",
            [target.seq],
        )
        cursor.execute("ALTER TABLE trial_auditentry ENABLE TRIGGER trial_auditentry_append_only")

    result = _manage("verify_audit")
    assert result.returncode != 0
    assert f"Audit chain broken at entry #{target.seq}" in result.stderr


def test_deleting_the_newest_audit_rows_is_caught_by_the_chain_head():
    world = World()
    enrol(world.trial, world.coordinator, world.physician, "T1")
    last = AuditEntry.objects.order_by("-seq").first()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE trial_auditentry DISABLE TRIGGER trial_auditentry_append_only")
        cursor.execute("DELETE FROM trial_auditentry WHERE seq = %s", [last.seq])
        cursor.execute("ALTER TABLE trial_auditentry ENABLE TRIGGER trial_auditentry_append_only")
    result = _manage("verify_audit")
    assert result.returncode != 0 and f"entry #{last.seq}" in result.stderr
