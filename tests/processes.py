"""Real helper processes for tests: a Celery worker on the test database and Redis, the demo server."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def database_url(settings_dict) -> str:
    user = settings_dict.get("USER") or "postgres"
    return f"postgres://{user}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"


@contextmanager
def celery_worker(settings_dict, queues=("default", "inference"), flush=True, pool="solo"):
    """Start `celery worker` as a separate process against the test database; stop it afterwards.

    `flush=False` keeps the broker's messages, as when a worker restarts after dying."""
    import redis
    from django.conf import settings

    if flush:
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no stale messages from earlier runs
    env = {**os.environ, "DATABASE_URL": database_url(settings_dict), "CONTOURTRIAL_TESTING": "1"}
    # The worker's log goes to a file: an unread pipe fills up and blocks a chatty worker.
    log = tempfile.NamedTemporaryFile(prefix="celery-worker-", suffix=".log", delete=False)  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", ",".join(queues), f"--pool={pool}",
         "--concurrency=1", "--loglevel=info", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    worker.log_path = log.name
    try:
        yield worker
    finally:
        stop_process_group(worker)  # a test may have killed it already
        log.close()


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to a process started with start_new_session=True and its children; SIGKILL if they outlive
    `timeout`. Nothing to do if it has ended already."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
