"""A data manager's chain verification runs in a real Celery worker (Redis broker, PostgreSQL)."""

import pytest
from django.db import connection

from tests.conftest import PASSWORD, World, enrol
from tests.processes import celery_worker, wait_for
from trial.models import AuditEntry, AuditVerification
from trial.services.audit_requests import request_verification
from trial.services.randomisation import randomise

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery]


def _finished(run_id):
    def check():
        run = AuditVerification.objects.get(pk=run_id)
        return run if run.finished_at else None

    return check


def test_worker_verifies_the_chain_and_reports_a_tampered_entry():
    world = World()
    randomise(actor=world.coordinator, patient=enrol(world.trial, world.coordinator, world.physician, "W1"),
              password=PASSWORD)  # fmt: skip
    with celery_worker(connection.settings_dict) as worker:
        run = request_verification(world.data_manager)
        done = wait_for(_finished(run.pk), what="the worker to verify the audit chain")
        assert done.ok is True and done.checked == AuditEntry.objects.count()

        target = AuditEntry.objects.filter(model="trial.patient").order_by("seq").first()
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE trial_auditentry DISABLE TRIGGER trial_auditentry_append_only")
            cursor.execute("UPDATE trial_auditentry SET actor_username = 'someone' WHERE seq = %s", [target.seq])
            cursor.execute("ALTER TABLE trial_auditentry ENABLE TRIGGER trial_auditentry_append_only")
        broken = wait_for(_finished(request_verification(world.data_manager).pk), what="the second verification")
        assert broken.ok is False and broken.first_broken_seq == target.seq
        assert worker.poll() is None, "the worker must still be running"


def test_only_a_data_manager_may_request_verification(db):
    world = World()
    api = world.client(world.statistician)
    assert api.post("/api/v1/audit/verifications/").status_code == 403
    assert world.client(world.data_manager).get("/api/v1/audit/verifications/").status_code == 200
