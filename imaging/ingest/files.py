"""Write an import's files, and remove them all again if the import fails.

Why not plain `storage.save`: on the local file system it costs about a millisecond a file (a search for
a free name, a chunked copy through a File object, directory checks every time), a large share of a
150-slice import. The pipeline writes fresh names (pseudonymous UIDs), so here each directory is made
once and each file is created exclusively (O_EXCL) and written with one system call from the encoder's
chunks, with the permissions and group Django would give it. A name that exists after all, an unusual
name, and every other storage (S3) go through `storage.save` as before, which picks a free name or raises.

Writing on a background thread *while* the importing thread prepares the next image was measured and
dropped: the thread waits up to a GIL switch interval (5 ms) after every system call, because the other
thread is busy in Python. `write_many` instead writes a whole prepared import on two threads at once: both
spend nearly all their time in system calls and in SHA-256 (which let go of the GIL), so neither holds it
for long and the two cores share the hashing and copying.
"""

import contextlib
import hashlib
import itertools
import os
import threading
from collections.abc import Callable

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from imaging.dicom.elements import FileRange

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_IOV_MAX = 1024
PARALLEL_MIN_FILES = 16  # below this a second thread costs more than it saves


class StoredFiles:
    """The files written for one import; `discard()` removes every one of them."""

    def __init__(self, storage, on_create: Callable[[str], None] | None = None):
        self.storage = storage
        self._on_create = on_create  # told each name before the file is created (a forked helper's log)
        self.names: list[str] = []
        self._direct = (
            isinstance(storage, FileSystemStorage)
            and storage.directory_permissions_mode is None
            and storage.OS_OPEN_FLAGS == _CREATE
            and not getattr(storage, "_allow_overwrite", False)
            and hasattr(os, "writev")
        )
        self._directories: set[str] = set()
        self._writer: threading.Thread | None = None
        self._location_gid: int | None = None

    def write(self, name: str, chunks: list) -> tuple[str, str]:
        """Store the chunks, concatenated, under `name` (or a free variant); return that name and the SHA-256.

        A chunk may be a FileRange (a value left in the file it was read from): it is read into this thread's
        scratch buffer, hashed and written from there."""
        return self._write(name, chunks, None)

    def _write(self, name: str, chunks: list, path: str | None) -> tuple[str, str]:
        chunks = _in_memory(chunks)
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)
        saved = self._write_direct(name, chunks, path) if self._direct and _plain(name) else None
        if saved is None:
            saved = self.storage.save(name, ContentFile(b"".join(chunks)))
            self.names.append(saved)
            if self._on_create is not None:
                self._on_create(saved)
        return saved, digest.hexdigest()

    def write_many(self, items: list[tuple[str, list[bytes]]]) -> list[tuple[str, str]]:
        """`write` for each (name, chunks), in order; files on the local disk are written on two threads, each
        taking the next file when it is free (a file system that stalls one thread does not hold the other)."""
        if not self._direct or len(items) < PARALLEL_MIN_FILES:
            return [self.write(name, chunks) for name, chunks in items]
        paths = [self.storage.path(name) if _plain(name) else None for name, _ in items]  # safe_join once
        for path in paths:  # directories first, so the threads never race to make one
            if path is not None:
                self._make_directory(os.path.dirname(path))
        results: list = [None] * len(items)
        failures: list[BaseException] = []
        order = itertools.count()  # the next file to write, for whichever thread is free (next() is atomic)

        def write_next() -> None:
            try:
                while not failures and (index := next(order)) < len(items):
                    results[index] = self._write(*items[index], paths[index])
            except BaseException as exc:  # re-raised on the calling thread; discard() removes what was written
                failures.append(exc)

        other = threading.Thread(target=write_next, name="ingest-writer", daemon=True)
        self._writer = other  # discard() waits for it, should this thread be interrupted while it writes
        other.start()
        try:
            write_next()
        finally:
            other.join()
        if failures:
            raise failures[0]
        return results

    @property
    def direct(self) -> bool:
        """Whether files go straight to the local file system (not through storage.save)."""
        return self._direct

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.join()  # every file it creates is then in self.names
        for name in self.names:
            self.storage.delete(name)
        self.names.clear()

    def _write_direct(self, name: str, chunks: list[bytes], path: str | None) -> str | None:
        if path is None:
            path = self.storage.path(name)  # safe_join: refuses names outside the storage root
            self._make_directory(os.path.dirname(path))
        if self._on_create is not None:
            self._on_create(name)
        try:
            fd = os.open(path, _CREATE, 0o666)
        except FileExistsError:
            return None
        self.names.append(name)  # before writing: a half-written file is removed with the rest
        try:
            _write_all(fd, chunks)
            if self.storage.file_permissions_mode is not None:
                os.fchmod(fd, self.storage.file_permissions_mode)
            self._same_group_as_location(fd)
        finally:
            os.close(fd)
        return name

    def _make_directory(self, directory: str) -> None:
        if directory not in self._directories:
            os.makedirs(directory, exist_ok=True)
            self._directories.add(directory)

    def _same_group_as_location(self, fd: int) -> None:
        """As FileSystemStorage does: the file gets the storage root's group where it can."""
        if os.name != "posix":
            return
        if self._location_gid is None:
            self._location_gid = os.stat(self.storage.location).st_gid
        if os.fstat(fd).st_gid != self._location_gid:
            with contextlib.suppress(PermissionError):
                os.fchown(fd, -1, self._location_gid)


_scratch = threading.local()
SCRATCH_KEPT = 64 * 1024**2  # a larger scratch buffer (a huge multi-frame value) is not kept for the next file


def _in_memory(chunks: list) -> list:
    """The chunks with each FileRange read into this thread's scratch buffer, valid until its next call.

    One buffer, reused image after image, instead of a fresh allocation per image: fresh memory costs a
    page fault per 4 KiB on first touch, as much time as hashing the bytes."""
    if not any(type(chunk) is FileRange for chunk in chunks):
        return chunks
    needed = sum(len(chunk) for chunk in chunks if type(chunk) is FileRange)
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or len(buffer) < needed:
        buffer = bytearray(needed)
        if needed <= SCRATCH_KEPT:
            _scratch.buffer = buffer
    view, used, out = memoryview(buffer), 0, []
    for chunk in chunks:
        if type(chunk) is FileRange:
            part = view[used : used + len(chunk)]
            chunk.read_into(part)
            out.append(part)
            used += len(chunk)
        else:
            out.append(chunk)
    return out


def _plain(name: str) -> bool:
    """Relative, forward slashes only, no empty, '.' or '..' parts: a name storage.save would keep as it is."""
    return "\\" not in name and "\x00" not in name and all(part not in ("", ".", "..") for part in name.split("/"))


def _write_all(fd: int, chunks: list[bytes]) -> None:
    pending = [memoryview(chunk) for chunk in chunks if chunk]
    while pending:
        written = os.writev(fd, pending[:_IOV_MAX])
        while pending and written >= len(pending[0]):
            written -= len(pending.pop(0))
        if written:
            pending[0] = pending[0][written:]
