"""The database half of a backup: a consistent dump and the facts a restore is checked against.

PostgreSQL: pg_dump (custom format) runs inside a snapshot exported from a repeatable-read transaction, and the
row counts, applied migrations and audit chain head are read in that same transaction, so the manifest
describes exactly what the dump holds while the app keeps running. SQLite (the demo): the online backup API
copies the file, and the facts are read from the copy.
"""

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from django.db import connection, transaction

from trial.backup import BackupError
from trial.models import AuditChainHead

DUMP_FILES = {"postgresql": "database.pgdump", "sqlite": "database.sqlite3"}
LIBPQ_SETTINGS = {"HOST": "PGHOST", "PORT": "PGPORT", "USER": "PGUSER", "PASSWORD": "PGPASSWORD", "NAME": "PGDATABASE"}
LIBPQ_OPTIONS = {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"}


def vendor() -> str:
    if connection.vendor not in DUMP_FILES:
        raise BackupError(f"Backups support PostgreSQL and SQLite, not {connection.vendor}.")
    return connection.vendor


def describe(cursor, tables, quote) -> dict:
    """Row count of every table, applied migrations per app, and the audit chain head."""
    counts = {}
    for table in sorted(tables):
        cursor.execute(f"SELECT COUNT(*) FROM {quote(table)}")  # noqa: S608 (names from the catalogue)
        counts[table] = cursor.fetchone()[0]
    cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
    migrations = {}
    for app, name in cursor.fetchall():
        migrations.setdefault(app, []).append(name)
    cursor.execute(f"SELECT last_seq, last_hash FROM {quote(AuditChainHead._meta.db_table)} WHERE id = 1")  # noqa: S608
    head = cursor.fetchone() or (0, None)
    return {"row_counts": counts, "migrations": migrations, "audit_chain": {"last_seq": head[0], "last_hash": head[1]}}


def current_facts() -> dict:
    with connection.cursor() as cursor:
        return describe(cursor, connection.introspection.table_names(cursor), connection.ops.quote_name)


def table_count() -> int:
    """Tables in the configured database (0: empty, a restore may go there)."""
    if connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"])
        if not path.is_file() or path.stat().st_size == 0:
            return 0
        with _sqlite(path) as db:
            return len(_sqlite_tables(db.cursor()))
    return len(connection.introspection.table_names())


def dump(folder: Path, pg_bin: str | None) -> tuple[str, dict]:
    """Write the dump into `folder`; return its file name and the facts of the dumped state."""
    name = DUMP_FILES[vendor()]
    if connection.vendor == "sqlite":
        return name, _sqlite_dump(folder / name)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot = cursor.fetchone()[0]
        _run(pg_bin, "pg_dump", "--format=custom", f"--snapshot={snapshot}", f"--file={folder / name}")
        facts = describe(cursor, connection.introspection.table_names(cursor), connection.ops.quote_name)
        cursor.execute("SHOW server_version")
        facts["server_version"] = cursor.fetchone()[0]
    return name, facts


def load(path: Path, pg_bin: str | None) -> None:
    """Load a dump into the configured (empty) database: one transaction, stopped at the first error."""
    if connection.vendor == "sqlite":
        connection.close()
        with _sqlite(path) as source, _sqlite(Path(connection.settings_dict["NAME"])) as target:
            source.backup(target)
        return
    connection.close()
    _run(pg_bin, "pg_restore", "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction",
         f"--dbname={connection.settings_dict['NAME']}", str(path))  # fmt: skip


def _sqlite_dump(target: Path) -> dict:
    connection.close()
    with _sqlite(Path(connection.settings_dict["NAME"])) as source, _sqlite(target) as copy:
        source.backup(copy)
    with _sqlite(target) as copy:
        cursor = copy.cursor()
        facts = describe(cursor, _sqlite_tables(cursor), lambda name: '"' + name.replace('"', '""') + '"')
        facts["server_version"] = sqlite3.sqlite_version
    return facts


class _sqlite:
    """sqlite3 connection that is closed on exit (sqlite3's own context manager only commits)."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path)

    def __enter__(self):
        return self.db

    def __exit__(self, *exc):
        self.db.close()


def _sqlite_tables(cursor) -> list[str]:
    cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return [row[0] for row in cursor.fetchall()]


def _run(pg_bin: str | None, tool: str, *args: str) -> None:
    executable = str(Path(pg_bin) / tool) if pg_bin else shutil.which(tool)
    if not executable or not Path(executable).is_file():
        raise BackupError(
            f"{tool} was not found. Install the PostgreSQL client tools of the server's major version "
            "(Debian: postgresql-client) or pass --pg-bin with their folder."
        )
    done = subprocess.run([executable, *args], env=_libpq_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


def _libpq_env() -> dict:
    """Connection settings for pg_dump/pg_restore through libpq's environment (the password stays off argv)."""
    settings_dict = connection.settings_dict
    env = dict(os.environ)
    for key, variable in LIBPQ_SETTINGS.items():
        if settings_dict.get(key):
            env[variable] = str(settings_dict[key])
    for option, variable in LIBPQ_OPTIONS.items():
        if settings_dict.get("OPTIONS", {}).get(option):
            env[variable] = str(settings_dict["OPTIONS"][option])
    return env


def resend_recent_tasks() -> int:
    """Mark the outbox's sent tasks unsent again after a restore: the broker's queue is not in a backup, so a task
    sent shortly before it (an AI job still queued, a measurement) would otherwise never run. Every task is
    idempotent (it checks its row's state), so one that did run does nothing the second time."""
    from trial.models import TaskOutbox

    return TaskOutbox.objects.exclude(sent_at=None).update(sent_at=None)
