"""Back up the database and every stored file into one folder, with a manifest of what it holds."""

import os
import subprocess
import tomllib
from pathlib import Path

import django
from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from trial import backup, backup_database


def storage_roots() -> dict[str, Path]:
    """The folders that hold trial files: images, contours and sealed exports (MEDIA_ROOT); AI models."""
    return {"storage": Path(settings.MEDIA_ROOT), "models": Path(settings.MODEL_ROOT)}


def nested_in(root: Path, roots: dict[str, Path]) -> tuple[Path, ...]:
    """Other roots inside `root` (docker-compose keeps MODEL_DIR inside STORAGE_DIR): copied once, as their own."""
    here = root.resolve()
    return tuple(other for other in roots.values() if other.resolve() != here and other.resolve().is_relative_to(here))


def app_version() -> dict:
    pyproject = Path(settings.BASE_DIR) / "pyproject.toml"
    version = tomllib.loads(pyproject.read_text())["project"]["version"] if pyproject.is_file() else None
    commit = os.environ.get("CONTOURTRIAL_GIT_COMMIT")
    if not commit:
        git = subprocess.run(["git", "-C", str(settings.BASE_DIR), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=False)  # fmt: skip
        commit = git.stdout.strip() if git.returncode == 0 else None
    return {"version": version, "git_commit": commit, "django": django.get_version()}


def object_storage() -> dict:
    """With S3, images live in the bucket: its own versioning/replication backs them up, not this command."""
    if isinstance(default_storage, FileSystemStorage):
        return {"backend": "filesystem", "in_backup": True}
    return {
        "backend": f"{type(default_storage).__module__}.{type(default_storage).__name__}",
        "bucket": getattr(default_storage, "bucket_name", None),
        "in_backup": False,
    }


class Command(BaseCommand):
    help = (
        "Back up the database (pg_dump custom format, or SQLite's online backup) and every stored file (images, "
        "contours, AI models, sealed exports) into one new folder with manifest.json: time (UTC), app version, "
        "migrations, row counts, audit chain head and the sha256 of every file. Restore with `manage.py restore`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output-dir", help="Folder that receives the backup folder (default: VAR_DIR/backups).")
        parser.add_argument("--name", help="Name of the backup folder (default: contourtrial-<UTC time>).")
        parser.add_argument("--pg-bin", default=os.environ.get("PG_BIN"),
                            help="Folder of pg_dump matching the server's major version (default: PATH).")  # fmt: skip

    def handle(self, *args, **options):
        started = timezone.now()
        output = Path(options["output_dir"] or Path(settings.VAR_DIR) / "backups").resolve()
        roots = storage_roots()
        for label, root in roots.items():
            if output.is_relative_to(root.resolve()):
                raise CommandError(f"The output folder {output} is inside the {label} folder {root}; put backups "
                                   "outside the folders they back up.")  # fmt: skip
        final = output / (options["name"] or f"contourtrial-{started:%Y%m%dT%H%M%SZ}")
        try:
            with backup.folder_in_place(final) as work:
                dump_name, facts = backup_database.dump(work, options["pg_bin"])
                server_version = facts.pop("server_version")
                files = {dump_name: backup.entry(work / dump_name)}  # the database first: files referenced by it
                for label, root in roots.items():  # exist already, as stored files are never changed in place
                    files |= backup.copy_root(root, work / "files" / label, f"files/{label}", nested_in(root, roots))
                manifest = {
                    "format": backup.FORMAT,
                    "created_at": started.isoformat().replace("+00:00", "Z"),
                    "finished_at": timezone.now().isoformat().replace("+00:00", "Z"),
                    "app": app_version(),
                    "database": {
                        "vendor": backup_database.vendor(),
                        "file": dump_name,
                        "server_version": server_version,
                    },
                    **facts,
                    "roots": {label: str(root) for label, root in roots.items()},
                    "object_storage": object_storage(),
                    "files": files,
                }
                backup.write_manifest(work, manifest)
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from exc
        stored = [name for name in files if name.startswith("files/")]
        size = sum(entry["size"] for entry in files.values())
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup written to {final}: {sum(facts['row_counts'].values())} rows in "
                f"{len(facts['row_counts'])} tables, {len(stored)} stored files, {size / 1e6:.1f} MB; "
                f"audit chain head #{facts['audit_chain']['last_seq']}."
            )
        )
        if not manifest["object_storage"]["in_backup"]:
            self.stdout.write(self.style.WARNING(
                f"Images in object storage (bucket {manifest['object_storage']['bucket']}) are not in this backup: "
                "keep the bucket's versioning and replication on (docs/DEPLOYMENT.md)."
            ))  # fmt: skip
