"""Turn uploaded files and zips into named byte payloads, refusing unsafe or oversized archives.

Pure Python: no Django. A zip is checked as a whole before anything is read from it, and reading is
bounded by the bytes actually inflated (declared sizes can lie).
"""

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath


class UploadError(ValueError):
    """The upload as a whole is refused; the message names the file and the problem."""


# What zipfile raises on a damaged archive besides BadZipFile: a corrupt deflate stream, a cut-off member, an
# unknown compression method, an impossible offset or header field.
_DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError,
            RuntimeError, ValueError, struct.error)  # fmt: skip


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 2 * 1024**3
    max_files: int = 5000
    max_compression_ratio: int = 200


@dataclass(frozen=True)
class Payload:
    name: str
    data: bytes


_SKIPPED_NAMES = {"DICOMDIR", ".DS_Store", "Thumbs.db"}


def _unsafe(member: str) -> bool:
    path = PurePosixPath(member.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (len(member) > 1 and member[1] == ":")


def expand_zip(name: str, data: bytes, limits: Limits) -> list[Payload]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except _DAMAGED as exc:
        raise UploadError(f"{name}: not a readable zip archive ({exc}).") from exc
    for info in members:
        if _unsafe(info.filename):
            raise UploadError(f"{name}: member {info.filename!r} has an unsafe path (absolute or with '..').")
        if info.flag_bits & 0x1:
            raise UploadError(f"{name}: member {info.filename!r} is encrypted.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadError(f"{name}: member {info.filename!r} is a symbolic link; zip the files themselves.")
    if len(members) > limits.max_files:
        raise UploadError(f"{name}: {len(members)} files, more than the limit of {limits.max_files}.")
    declared = sum(info.file_size for info in members)
    if declared > limits.max_bytes:
        raise UploadError(f"{name}: would unpack to {declared} bytes, more than the limit of {limits.max_bytes}.")
    packed = max(1, sum(info.compress_size for info in members))
    if declared > 1024**2 and declared / packed > limits.max_compression_ratio:
        raise UploadError(
            f"{name}: compression ratio {declared / packed:.0f}:1 exceeds {limits.max_compression_ratio}:1 "
            "(a zip bomb?); refused."
        )
    payloads, total = [], 0
    for info in members:
        base = PurePosixPath(info.filename).name
        if base in _SKIPPED_NAMES or info.filename.startswith("__MACOSX/"):
            continue
        chunks = []
        try:
            with archive.open(info) as member:
                while chunk := member.read(1024**2):
                    total += len(chunk)
                    if total > limits.max_bytes:
                        raise UploadError(f"{name}: unpacks beyond the limit of {limits.max_bytes} bytes; refused.")
                    chunks.append(chunk)
        except UploadError:
            raise
        except _DAMAGED as exc:
            reason = str(exc) if len(str(exc)) <= 200 else str(exc)[:199] + "…"  # zipfile quotes raw header bytes
            problem = f"{name}: member {info.filename!r} is damaged and cannot be unpacked ({reason})."
            raise UploadError(problem) from exc
        payloads.append(Payload(f"{name}/{info.filename}", b"".join(chunks)))
    return payloads


def expand_uploads(files: Iterable[tuple[str, bytes]], limits: Limits = Limits()) -> list[Payload]:
    """Files as (name, bytes): zips are expanded, other files taken as they are."""
    payloads: list[Payload] = []
    total = 0
    for name, data in files:
        if data[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
            items = expand_zip(name, data, limits)
        elif PurePosixPath(name).name in _SKIPPED_NAMES:
            items = []
        else:
            items = [Payload(name, data)]
        total += sum(len(item.data) for item in items)
        if total > limits.max_bytes:
            raise UploadError(f"The upload exceeds the limit of {limits.max_bytes} bytes.")
        payloads.extend(items)
        if len(payloads) > limits.max_files:
            raise UploadError(f"The upload has more than {limits.max_files} files.")
    if not payloads:
        raise UploadError("The upload contains no files.")
    return payloads
