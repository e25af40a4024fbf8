"""Restore a backup made by `manage.py backup` into an empty database and empty storage folders, then verify it."""

import os
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from trial import backup, backup_database
from trial.audit.recorder import record
from trial.management.commands.backup import storage_roots


class Command(BaseCommand):
    help = (
        "Restore a backup folder into the configured database, which must be EMPTY (no tables: create a new "
        "database, do not migrate it), and into empty storage folders (STORAGE_DIR, MODEL_DIR). Every file is "
        "checked against the manifest's sha256 first; afterwards row counts, migrations and the audit chain head "
        "are compared with the manifest and verify_audit runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("backup", help="The backup folder (the one holding manifest.json).")
        parser.add_argument(
            "--pg-bin", default=os.environ.get("PG_BIN"), help="Folder of pg_restore (default: found on PATH)."
        )

    def handle(self, *args, **options):
        try:
            self.restore(Path(options["backup"]), options["pg_bin"])
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from exc

    def restore(self, folder: Path, pg_bin: str | None) -> None:
        manifest = backup.read_manifest(folder)
        damaged = backup.damaged_files(folder, manifest)
        if damaged:
            raise CommandError(
                f"Refusing to restore {folder}: it does not match its manifest, so it is damaged or was altered. "
                "Nothing was changed.\n  " + "\n  ".join(damaged)
            )
        self.stdout.write(f"Backup intact: {len(manifest['files'])} files match their sha256.")
        roots = self.check_targets(manifest)
        plan = self.file_plan(folder, manifest, roots)

        # Files first, the database last: loading it is one transaction, so if anything fails the files copied so
        # far are removed and database and folders are empty again, ready for another try.
        written: list[Path] = []
        try:
            for source, target, expected in plan:
                written.append(target)
                if backup.copy_file(source, target)["sha256"] != expected:
                    raise CommandError(f"{source} changed while it was restored. Nothing was kept; restore again.")
            backup_database.load(folder / manifest["database"]["file"], pg_bin)
        except BaseException as exc:
            for path in written:
                path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise CommandError(f"Restore failed ({exc}); the files copied so far were removed.") from exc
            raise
        self.stdout.write(f"{len(plan)} stored files restored and checked: " +
                          ", ".join(f"{label} → {root}" for label, root in roots.items()))  # fmt: skip
        self.stdout.write(f"Database restored into {connection.settings_dict['NAME']}.")

        self.compare(manifest, backup_database.current_facts())
        resent = backup_database.resend_recent_tasks()
        if resent:
            self.stdout.write(f"{resent} task(s) sent shortly before the backup will be sent again (the broker's "
                              "queue is not in a backup; every task is idempotent).")  # fmt: skip
        record(
            action="restore",
            model="trial.backup",
            object_pk=folder.name,
            object_repr=f"backup {folder.name}",
            changes={"created_at": [None, manifest["created_at"]], "git_commit": [None, manifest["app"]["git_commit"]]},
            reason="database and stored files restored from a backup",
        )
        call_command("verify_audit", stdout=self.stdout)
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            self.stdout.write(self.style.WARNING(
                f"This code has {len(pending)} migration(s) newer than the backup: run `manage.py migrate` next."
            ))  # fmt: skip
        if not manifest["object_storage"]["in_backup"]:
            self.stdout.write(self.style.WARNING(
                f"Images were in object storage ({manifest['object_storage']['backend']}, bucket "
                f"{manifest['object_storage']['bucket']}) and are not in this backup: point STORAGE_BACKEND=s3 at "
                "that bucket (restored to the backup's time from its versioning if needed)."
            ))  # fmt: skip
        self.stdout.write(self.style.SUCCESS(f"Restore of {folder.name} complete and verified."))

    def file_plan(self, folder: Path, manifest: dict, roots: dict[str, Path]) -> list[tuple[Path, Path, str]]:
        """(source, target, sha256) of every stored file; refuses a listing that would write outside its folder."""
        dump = manifest["database"]["file"]
        if dump not in manifest["files"]:
            raise CommandError(f"The manifest does not list the database dump {dump!r}; the backup was altered.")
        plan = []
        for name, expected in sorted(manifest["files"].items()):
            if name == dump:
                continue
            label, _, relative = name.removeprefix("files/").partition("/")
            if not name.startswith("files/") or label not in roots or not relative:
                raise CommandError(f"The manifest lists {name!r}, which is no stored file of this version.")
            root = roots[label].resolve()
            target = root / backup.safe_relative(relative)
            if not target.resolve().is_relative_to(root):
                raise CommandError(f"The manifest lists {name!r}, which points outside {root}; the backup was altered.")
            plan.append((folder / name, target, expected["sha256"]))
        return plan

    def check_targets(self, manifest: dict) -> dict[str, Path]:
        """Refuse unless the database and every storage folder are empty: a restore never merges or overwrites."""
        vendor = backup_database.vendor()
        if manifest["database"]["vendor"] != vendor:
            raise CommandError(
                f"This backup holds a {manifest['database']['vendor']} database, but DATABASE_URL points at "
                f"{vendor}. Point DATABASE_URL at an empty {manifest['database']['vendor']} database."
            )
        tables = backup_database.table_count()
        if tables:
            fresh = "a new SQLite file" if vendor == "sqlite" else "a new database (`createdb contourtrial_restored`)"
            raise CommandError(
                f"Refusing to restore: the database {connection.settings_dict['NAME']} is not empty ({tables} tables). "
                f"Restore only into an empty database: point DATABASE_URL at {fresh} and do not run migrate first. "
                "Nothing was changed."
            )
        roots = storage_roots()
        unknown = set(manifest["roots"]) - set(roots)
        if unknown:
            raise CommandError(f"The backup has file folders this version does not know: {', '.join(sorted(unknown))}.")
        for label, root in roots.items():
            if not backup.is_empty(root):
                raise CommandError(
                    f"Refusing to restore: the {label} folder {root} already holds files. Point "
                    f"{'STORAGE_DIR' if label == 'storage' else 'MODEL_DIR'} at a new, empty folder. Nothing was "
                    "changed."
                )
        return roots

    def compare(self, manifest: dict, restored: dict) -> None:
        """The restored database holds what the backup described: every table's rows, migrations, chain head."""
        problems = [
            f"table {table}: {restored['row_counts'].get(table)} rows, the backup had {count}"
            for table, count in sorted(manifest["row_counts"].items())
            if restored["row_counts"].get(table) != count
        ]
        if restored["migrations"] != manifest["migrations"]:
            problems.append("the applied migrations differ from the backup's")
        if restored["audit_chain"] != manifest["audit_chain"]:
            problems.append(
                f"the audit chain head is {restored['audit_chain']}, the backup had {manifest['audit_chain']}"
            )
        if problems:
            raise CommandError("The restored database differs from the backup:\n  " + "\n  ".join(problems))
        rows = sum(restored["row_counts"].values())
        self.stdout.write(f"Row counts of {len(restored['row_counts'])} tables ({rows} rows), migrations and the "
                          "audit chain head match the manifest.")  # fmt: skip
