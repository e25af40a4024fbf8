"""Hash chain over audit entries: pure functions, no Django.

Each entry's hash covers its own content and the previous entry's hash, so changing, deleting or
reordering any stored entry breaks every hash after it.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "timestamp",
    "actor_id",
    "actor_username",
    "action",
    "model",
    "object_pk",
    "object_repr",
    "changes",
    "reason",
    "reveals_allocation",
)


def canonical(entry: Mapping) -> bytes:
    return json.dumps(
        {name: entry[name] for name in HASHED_FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def entry_hash(entry: Mapping, prev_hash: str) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(entry)).hexdigest()


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    problem: str = ""


def verify(entries: Iterable[Mapping]) -> Verification:
    """Walk entries in seq order; stop at the first one whose link or content does not hold."""
    prev_hash = GENESIS
    expected_seq = 1
    checked = 0
    for entry in entries:
        seq = entry["seq"]
        if seq != expected_seq:
            return Verification(
                False, checked, expected_seq, f"entry #{expected_seq} is missing (next stored is #{seq})"
            )
        if entry["prev_hash"] != prev_hash:
            return Verification(False, checked, seq, f"entry #{seq} does not link to the hash of entry #{seq - 1}")
        if entry_hash(entry, prev_hash) != entry["entry_hash"]:
            return Verification(False, checked, seq, f"entry #{seq}'s contents do not match its stored hash")
        prev_hash = entry["entry_hash"]
        expected_seq += 1
        checked += 1
    return Verification(True, checked)
