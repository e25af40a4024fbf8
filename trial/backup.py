"""Backup folders: stored files copied with their sha256, a manifest, and checks of both. Plain Python, no Django.

A backup is one folder: `manifest.json`, the database dump, and the file roots under `files/<root>/`. It is
written under a hidden temporary name beside its final place and renamed into place only when complete, so a
folder with the final name is never a half backup. A restore first re-hashes every file against the manifest.
"""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MANIFEST = "manifest.json"
FORMAT = 1
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup cannot be made or restored; the message says why and what to do."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def entry(path: Path) -> dict:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def files_under(root: Path, skip: tuple[Path, ...] = ()) -> Iterator[Path]:
    """Regular files under `root` in a stable order, leaving out the folders in `skip` (another root inside it)."""
    if not root.is_dir():
        return
    skipped = {s.resolve() for s in skip}
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(d for d in subfolders if (here / d).resolve() not in skipped)
        for name in sorted(names):
            path = here / name
            if path.is_file() and not path.is_symlink():
                yield path


def is_empty(root: Path) -> bool:
    """True when `root` holds no files (empty folders are fine: the app makes some at start-up)."""
    return next(files_under(root), None) is None


def copy_file(source: Path, target: Path) -> dict:
    """Copy and hash in one pass; flushed to disk so that a finished backup survives a power cut."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as src, target.open("xb") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    shutil.copystat(source, target)
    return {"sha256": digest.hexdigest(), "size": size}


def copy_root(source: Path, target: Path, prefix: str, skip: tuple[Path, ...] = ()) -> dict[str, dict]:
    """Copy every file of `source` under `target`; the inventory's keys are `prefix/relative/path`."""
    inventory = {}
    for path in files_under(source, skip):
        relative = path.relative_to(source).as_posix()
        try:
            inventory[f"{prefix}/{relative}"] = copy_file(path, target / relative)
        except FileNotFoundError:  # removed while the backup ran: a refused import's file, which no row names
            (target / relative).unlink(missing_ok=True)
    return inventory


@contextmanager
def folder_in_place(final: Path) -> Iterator[Path]:
    """Yield a hidden temporary folder beside `final`; rename it to `final` only if the block succeeds."""
    if final.exists():
        raise BackupError(f"{final} exists already; choose another output folder or name.")
    final.parent.mkdir(parents=True, exist_ok=True)
    # A folder of its own (two backups started in the same second never share one); hidden, so never taken for a
    # backup. One left over by a killed backup is named so and can be deleted.
    partial = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield partial
        _fsync_folder(partial)
        partial.rename(final)
        _fsync_folder(final.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_manifest(folder: Path, manifest: dict) -> None:
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} is not a backup: it has no {MANIFEST}.")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise BackupError(f"{path} is not valid JSON ({exc}); the backup is damaged.") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} has format {manifest.get('format')!r}; this version reads format {FORMAT}.")
    return manifest


def safe_relative(name: str) -> str:
    """A manifest key as a relative path that stays inside its folder (the manifest is not signed: a restore must
    never write where an altered one points, such as an absolute path or `..`)."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in parts):
        raise BackupError(f"The manifest lists {name!r}, which is not a plain relative path; the backup was altered.")
    return name


def damaged_files(folder: Path, manifest: dict) -> list[str]:
    """Every way the folder differs from its manifest: missing, changed or unlisted files. Empty when intact."""
    listed = manifest["files"]
    for name in listed:
        safe_relative(name)
    problems = []
    for name, expected in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != expected["size"] or sha256_file(path) != expected["sha256"]:
            problems.append(f"{name} differs from the manifest (sha256 {expected['sha256'][:12]}…)")
    present = {p.relative_to(folder).as_posix() for p in files_under(folder)} - {MANIFEST}
    problems += [f"{name} is not in the manifest" for name in sorted(present - set(listed))]
    return problems
