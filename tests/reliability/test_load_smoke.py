"""The load test's orchestrator end to end, small and short (the full 5-minute run is `make reliability`):
gunicorn, a Celery worker, PostgreSQL and Redis under 3 physicians, 1 panel member and 1 coordinator for 20 s.
No request may fail, and every save the server acknowledged must be in the database, once, as sent."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        pytest.skip("the load test needs PostgreSQL (DATABASE_URL)")
    return urlunsplit(parts._replace(path=f"{parts.path}_load_smoke"))


def _drop(url: str) -> None:
    parts = urlsplit(url)
    connection = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')
    connection.close()


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.celery
def test_short_load_run_has_no_errors_and_loses_no_save(tmp_path):
    if importlib.util.find_spec("locust") is None:  # not imported here: importing locust monkey-patches gevent
        pytest.skip("locust is not installed (requirements-reliability.txt)")
    database_url = _load_database_url()
    command = [
        sys.executable, "bench/load/run_load.py", "--users-physicians", "3", "--panel", "1", "--coordinators", "1",
        "--seconds", "20", "--spawn-rate", "5", "--rows", "128", "--slices", "40", "--static", "plain",
        "--database-url", database_url, "--broker-url", os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        "--out", str(tmp_path),
    ]  # fmt: skip
    try:
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    finally:
        _drop(database_url)
    report_path = tmp_path / "load.json"
    assert report_path.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    verification = report["verification"]

    assert report["errors"] == 0, report["error_messages"]
    assert report["servers_alive_at_end"]
    assert sum(report["server"]["error_lines_logged"].values()) == 0, (tmp_path / "load-run").as_posix()
    acks = {a["role"] for a in json.loads((tmp_path / "load-run" / "locust-results.json").read_text())["acks"]}
    assert acks == {"physician", "panel"}, "both the physicians and the panel member saved"
    assert verification["acknowledged"] >= 4
    assert verification["found"] == verification["acknowledged"], verification["missing"]
    assert verification["mismatched_count"] == 0, verification["mismatched"]
    assert verification["save_ids_with_two_versions"] == 0
    assert verification["acknowledged_twice"] == 0
    assert not verification["streams_with_gaps"]
    assert verification["events_stored"] >= verification["events_acknowledged"] > 0
    assert "coordinator: home" in {r["endpoint"] for r in report["endpoints"]}
    assert run.returncode == 0, run.stdout[-3000:]
