"""Redis stopped for OUTAGE_SECONDS: pages and contour saves keep working; the tasks asked for meanwhile run
after Redis returns, exactly once.

Real pieces: gunicorn (two sync workers), a Celery worker with Celery beat on a private Redis that the test stops
and starts again (it comes back empty, like a Redis without persistence), on the test database; the users are
signed in. During the outage a physician loads pages and autosaves one case, submits another (its blinded review
opens at once: no broker involved), a panel member approves it (the correction measurement is a Celery task)
and a data manager asks for an audit-chain verification (another). Both tasks wait in the outbox and run once
Redis is back (beat relays every 2 s here).

`make test` uses an 8 s outage; `make reliability` sets OUTAGE_SECONDS=60.
"""

import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import numpy as np
import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.test import Client

from delineation import labelmap_codec
from panel_review.models import CorrectionMetrics, ReviewCase
from tests.conftest import PASSWORD, World
from tests.delineation.helpers import case_in_arm
from tests.processes import ROOT, database_url, stop_process_group, wait_for
from tests.reliability.redis_server import free_port, private_redis
from trial.models import AuditVerification, TaskOutbox

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery, pytest.mark.slow]

OUTAGE_SECONDS = float(os.environ.get("OUTAGE_SECONDS", "8"))
RELAY_SECONDS = 2
SLOW = 2.0  # seconds: no page or save may take longer while Redis is down


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ROOT = tmp_path / "models"


@contextmanager
def background(args, log_path, env):
    log = log_path.open("w")
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        stop_process_group(process)
        log.close()


def gunicorn(env, log_path):
    """Two sync workers; --preload imports the app once (on two cores every import of torch costs seconds)."""
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
            "--preload"]  # fmt: skip
    return background(args, log_path, env), f"http://127.0.0.1:{port}"


def worker_with_beat(env, folder):
    """A worker as tests/processes.py starts one, with Celery beat embedded (-B: the relay every RELAY_SECONDS)."""
    args = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,inference", "--pool=solo",
            "--concurrency=1", "--loglevel=info", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-B", "-s", str(folder / "beat-schedule")]  # fmt: skip
    return background(args, folder / "worker.log", env)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=30).status_code == 200
    except requests.ConnectionError:  # not listening yet
        return False


def signed_in(base: str, user) -> requests.Session:
    """A signed-in browser session, made as Django's test client makes one (sign-in is not under test here, and
    its deliberately slow password hashing would cost seconds); then the CSRF cookie, from the login page."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = requests.Session()
    session.cookies.set(django_settings.SESSION_COOKIE_NAME, client.cookies[django_settings.SESSION_COOKIE_NAME].value)
    session.get(f"{base}/accounts/login/", timeout=30)
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


class Timed:
    """Every request's status and seconds, by kind."""

    def __init__(self):
        self.seen: dict[str, list[tuple[int, float]]] = {}

    def __call__(self, kind, method, url, **kwargs) -> requests.Response:
        began = time.monotonic()
        response = method(url, timeout=30, **kwargs)
        self.seen.setdefault(kind, []).append((response.status_code, time.monotonic() - began))
        return response

    def summary(self, kind) -> str:
        seconds = sorted(s for _, s in self.seen[kind])
        p95 = seconds[max(0, round(0.95 * len(seconds)) - 1)]
        return (
            f"{kind}: n={len(seconds)} median={statistics.median(seconds):.3f}s p95={p95:.3f}s max={seconds[-1]:.3f}s"
        )


def save(timed, kind, session, url, labels, base_version) -> requests.Response:
    headers = {"Content-Type": "application/vnd.contourtrial.labelmap", "X-Base-Version": str(base_version),
               "X-Save-Id": str(uuid.uuid4())}  # fmt: skip
    return timed(kind, session.post, url, data=labelmap_codec.encode(labels), headers=headers)


def test_pages_and_saves_work_while_redis_is_down_and_queued_tasks_run_after(settings, tmp_path, monkeypatch):
    world = World()
    hasher = PBKDF2PasswordHasher()  # signatures in gunicorn check with the production hashers, not the suite's MD5
    for user in (world.physician, world.panel):
        type(user).objects.filter(pk=user.pk).update(password=hasher.encode(PASSWORD, hasher.salt()))
        user.refresh_from_db()  # the session's hash derives from the stored password
    editing = case_in_arm(world, "manual", tmp_path / "editing", seed=61, rows=64, slices=24)
    submitting = case_in_arm(world, "manual", tmp_path / "submitting", seed=62, rows=64, slices=24)
    api = f"/api/v1/delineation/cases/{submitting.patient.pk}/"

    with private_redis() as redis_server:
        processes = {
            "CELERY_BROKER_URL": redis_server.url,
            "DATABASE_URL": database_url(connection.settings_dict),
            "OUTBOX_RELAY_SECONDS": str(RELAY_SECONDS),
            "REVIEW_RECONCILE_SECONDS": "3600",  # no reconciliation run in the way of "exactly once"
            "STORAGE_DIR": str(settings.MEDIA_ROOT),
            "MODEL_DIR": str(settings.MODEL_ROOT),
            "CONTOURTRIAL_TESTING": "1",
        }
        for name, value in processes.items():
            monkeypatch.setenv(name, value)
        server, base = gunicorn(dict(os.environ), tmp_path / "gunicorn.log")
        worker_log = tmp_path / "worker.log"
        with worker_with_beat(dict(os.environ), tmp_path), server:
            wait_for(lambda: answers(f"{base}/accounts/login/"), 60, what="gunicorn")
            physician, panel = signed_in(base, world.physician), signed_in(base, world.panel)
            data_manager = signed_in(base, world.data_manager)
            wait_for(lambda: "ready." in worker_log.read_text(), 60, what="the Celery worker")

            timed = Timed()
            labels = editing.truth.astype(np.uint8)
            flat = labels.reshape(-1)
            pages = ["/", "/delineation/", f"/delineation/cases/{editing.patient.pk}/",
                     f"/api/v1/delineation/cases/{editing.patient.pk}/"]  # fmt: skip
            versions = f"/api/v1/delineation/cases/{editing.patient.pk}/versions/"
            latest = 0

            def round_of_work(phase):
                nonlocal latest
                for page in pages:
                    assert timed(f"page {phase}", physician.get, base + page).status_code == 200, page
                flat[latest] ^= 1  # every autosave differs from the one before
                answer = save(timed, f"autosave {phase}", physician, base + versions, labels, latest)
                assert answer.status_code == 201, answer.text[:300]
                latest += 1

            for _ in range(3):
                round_of_work("before")
            submitted_labels = submitting.truth.astype(np.uint8)
            assert save(timed, "setup", physician, base + api + "versions/", submitted_labels, 0).status_code == 201

            redis_server.stop()
            down_at = time.monotonic()
            # Redis is down: a submission (its review opens at once), an approval and a verification request.
            signed = {"password": PASSWORD, "version": 1}
            submitted = timed("submit", physician.post, base + api + "submit/", json=signed)
            assert submitted.status_code == 200, submitted.text[:300]
            code = timed("review list", panel.get, f"{base}/api/v1/review/cases/").json()[0]["code"]
            review = f"{base}/api/v1/review/cases/{code}/"
            approved = submitting.truth.astype(np.uint8)
            assert save(timed, "review save", panel, review + "versions/", approved, 0).status_code == 201
            approval = timed("approve", panel.post, review + "approve/", json=signed)
            assert approval.status_code == 200, approval.text[:300]
            asked = timed("verification", data_manager.post, f"{base}/api/v1/audit/verifications/")
            assert asked.status_code == 202, asked.text[:300]
            while time.monotonic() - down_at < OUTAGE_SECONDS:
                round_of_work("during")
                time.sleep(0.5)

            case = ReviewCase.objects.get(patient=submitting.patient)
            assert case.approved_version is not None and case.assignments.count() == 1
            waiting = list(TaskOutbox.objects.filter(sent_at__isnull=True).order_by("pk"))
            assert [row.task for row in waiting] == ["panel_review.tasks.measure_corrections",
                                                     "trial.verify_audit_chain"]  # fmt: skip
            finished = AuditVerification.objects.filter(finished_at__isnull=False)
            assert not CorrectionMetrics.objects.exists() and not finished.exists()

            redis_server.start()
            up_at = time.monotonic()

            def tasks_done():
                return CorrectionMetrics.objects.filter(case=case).exists() and finished.exists()

            wait_for(tasks_done, 90, what="the measurement and the verification after Redis returned")
            recovery = time.monotonic() - up_at
            time.sleep(RELAY_SECONDS + 1)  # a second copy, if one were sent, would have arrived by now
            round_of_work("after")
            received = worker_log.read_text()

    for row in waiting:
        row.refresh_from_db()
        assert row.sent_at is not None
        copies = re.findall(rf"Task {re.escape(row.task)}\[outbox-{row.pk}\] received", received)
        assert len(copies) == 1, f"{row} reached the worker {len(copies)} times"
    assert CorrectionMetrics.objects.filter(case=case).count() == 1  # manual arm: submitted vs approved
    verification = AuditVerification.objects.get()
    assert verification.ok is True

    during = [s for kind, rows in timed.seen.items() if kind.endswith("during") for _, s in rows]
    assert max(during) < SLOW, "a page or save waited on the dead broker"
    print(f"\nRedis down {OUTAGE_SECONDS:g} s; tasks done {recovery:.1f} s after it returned.")
    for kind in timed.seen:
        print(timed.summary(kind))
