"""Backup and restore: `manage.py backup` of real trial data, `manage.py restore` into a brand-new database and empty
folders (other DATABASE_URL, STORAGE_DIR, MODEL_DIR, as an operator would run it), verify_audit passes, rows and
file hashes match; a restore into a database that is not empty, or from an altered backup, is refused."""

import json
import os
import subprocess
import sys

import numpy as np
import psycopg2
import pytest
from django.db import connection

from tests.conftest import World
from tests.delineation.helpers import case_in_arm, post_labelmap, store_proposal
from tests.inference.conftest import register_demo
from tests.processes import ROOT, database_url
from trial.backup import files_under, sha256_file

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ROOT = tmp_path / "models"


def manage(*args, database: str, storage, models):
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "STORAGE_DIR": str(storage),
        "MODEL_DIR": str(models),
        "CONTOURTRIAL_TESTING": "1",
    }
    return subprocess.run([sys.executable, "manage.py", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def hashes(root) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): sha256_file(path) for path in files_under(root)}


def table_rows(cursor, tables) -> dict[str, int]:
    counts = {}
    for table in tables:
        cursor.execute(f'SELECT COUNT(*) FROM "{table}"')  # noqa: S608
        counts[table] = cursor.fetchone()[0]
    return counts


@pytest.fixture
def empty_database():
    """A brand-new database beside the test database, dropped afterwards."""
    target = f"{connection.settings_dict['NAME']}_restored"
    admin = psycopg2.connect(database_url({**connection.settings_dict, "NAME": "postgres"}))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{target}"')
        cursor.execute(f'CREATE DATABASE "{target}"')
    try:
        yield database_url({**connection.settings_dict, "NAME": target})
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        admin.close()


def test_backup_then_restore_into_an_empty_database(settings, tmp_path, empty_database):
    world = World()
    model = register_demo(world, active=False)  # model files under MODEL_ROOT
    case = case_in_arm(world, "ai", tmp_path / "phantom", seed=51, rows=64, slices=20)  # enrolled, randomised, DICOM
    store_proposal(world, case, case.truth, model=model)  # AI mask, probability and uncertainty files
    assert post_labelmap(world.client(world.physician), case.patient, case.truth.astype(np.uint8), 0).status_code == 201
    source = {"database": database_url(connection.settings_dict), "storage": settings.MEDIA_ROOT,
              "models": settings.MODEL_ROOT}  # fmt: skip
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        source_rows = table_rows(cursor, tables)
    source_files = {"storage": hashes(settings.MEDIA_ROOT), "models": hashes(settings.MODEL_ROOT)}
    assert len(source_files["storage"]) > 20 and source_files["models"]

    done = manage("backup", "--output-dir", tmp_path / "backups", "--name", "nightly", **source)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "backups" / "nightly"
    assert [p.name for p in (tmp_path / "backups").iterdir()] == ["nightly"], "no partial folder is left behind"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["database"] == {"vendor": "postgresql", "file": "database.pgdump",
                                    "server_version": manifest["database"]["server_version"]}  # fmt: skip
    assert manifest["row_counts"] == source_rows
    assert manifest["created_at"].endswith("Z") and manifest["migrations"]["trial"]
    for label, files in source_files.items():
        assert {name: manifest["files"][f"files/{label}/{name}"]["sha256"] for name in files} == files

    restored = {"database": empty_database, "storage": tmp_path / "restored" / "storage",
                "models": tmp_path / "restored" / "models"}  # fmt: skip

    # Refused, and nothing changed: a database that is not empty, then a backup altered after it was made.
    refused = manage("restore", folder, **{**restored, "database": source["database"]})
    assert refused.returncode != 0 and "is not empty" in refused.stderr
    altered = next(name for name in manifest["files"] if name.startswith("files/storage/"))
    original = (folder / altered).read_bytes()
    (folder / altered).write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    refused = manage("restore", folder, **restored)
    assert refused.returncode != 0 and altered in refused.stderr and "damaged or was altered" in refused.stderr
    (folder / altered).write_bytes(original)
    # A manifest altered to write outside the storage folder (the file's hash matches: only the path is hostile).
    manifest_text = (folder / "manifest.json").read_text()
    escaping = {"files/storage/../../escaped.dcm": manifest["files"][altered]}
    hostile = {**manifest, "files": {**manifest["files"], **escaping}}
    (folder / "manifest.json").write_text(json.dumps(hostile))
    refused = manage("restore", folder, **restored)
    assert refused.returncode != 0 and "not a plain relative path" in refused.stderr
    assert not (tmp_path / "escaped.dcm").exists() and not (tmp_path / "restored" / "escaped.dcm").exists()
    (folder / "manifest.json").write_text(manifest_text)
    target = psycopg2.connect(empty_database)
    try:
        with target.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'")
            assert cursor.fetchone()[0] == 0, "a refused restore leaves the database empty"
        assert not restored["storage"].exists() or not list(files_under(restored["storage"]))

        done = manage("restore", folder, **restored)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Audit chain intact" in done.stdout and "complete and verified" in done.stdout
        verified = manage("verify_audit", **restored)
        assert verified.returncode == 0 and "Audit chain intact" in verified.stdout, verified.stderr

        with target.cursor() as cursor:
            restored_rows = table_rows(cursor, tables)
            cursor.execute("SELECT action, model, object_pk FROM trial_auditentry ORDER BY seq DESC LIMIT 1")
            assert cursor.fetchone() == ("restore", "trial.backup", "nightly"), "the restore itself is audited"
            cursor.execute("SELECT sha256 FROM delineation_contourversion ORDER BY patient_id, stream, number")
            assert [row[0] for row in cursor.fetchall()] == list(
                case.patient.contour_versions.values_list("sha256", flat=True)
            )
    finally:
        target.close()
    assert restored_rows == {**source_rows, "trial_auditentry": source_rows["trial_auditentry"] + 1}
    assert hashes(restored["storage"]) == source_files["storage"]
    assert hashes(restored["models"]) == source_files["models"]
