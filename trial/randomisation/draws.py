"""Deterministic uniform draws keyed by the trial's secret seed (HMAC-SHA256 as a keyed PRF)."""

import hashlib
import hmac

_SCALE = float(2**64)


def uniform(seed: bytes, *labels: object) -> float:
    """A draw in [0, 1) that depends only on the seed and the labels naming its purpose."""
    message = "\x1f".join(str(label) for label in labels).encode()
    digest = hmac.new(seed, message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def index(seed: bytes, n: int, *labels: object) -> int:
    """A draw in range(n)."""
    return min(int(uniform(seed, *labels) * n), n - 1)
