"""Stratified permuted blocks with randomly varying block sizes.

Each stratum has its own endless sequence of blocks; block k's size and order are HMAC draws of
(seed, stratum, k), so the arm at position n is recomputed on demand and never stored.
"""

from collections.abc import Iterator, Sequence
from functools import lru_cache

from . import draws
from .design import ARMS


@lru_cache(maxsize=8192)
def block(
    seed: bytes, stratum_key: str, k: int, block_sizes: tuple[int, ...], ratio: tuple[int, ...]
) -> tuple[str, ...]:
    """Block number k of a stratum: its size drawn from `block_sizes`, its order shuffled."""
    size = block_sizes[draws.index(seed, len(block_sizes), "block-size", stratum_key, k)]
    repeats = size // sum(ratio)
    arms = [arm for arm, share in zip(ARMS, ratio, strict=True) for _ in range(share * repeats)]
    for i in range(len(arms) - 1, 0, -1):  # Fisher–Yates
        j = draws.index(seed, i + 1, "block-order", stratum_key, k, i)
        arms[i], arms[j] = arms[j], arms[i]
    return tuple(arms)


def iter_blocks(
    seed: bytes, stratum_key: str, block_sizes: Sequence[int], ratio: Sequence[int]
) -> Iterator[tuple[str, ...]]:
    k = 0
    while True:
        yield block(seed, stratum_key, k, tuple(block_sizes), tuple(ratio))
        k += 1


def arm_at(seed: bytes, stratum_key: str, position: int, block_sizes: Sequence[int], ratio: Sequence[int]) -> str:
    """The arm of the stratum's allocation number `position` (0-based)."""
    remaining = position
    for arms in iter_blocks(seed, stratum_key, block_sizes, ratio):
        if remaining < len(arms):
            return arms[remaining]
        remaining -= len(arms)
    raise AssertionError("unreachable: the block sequence is endless")
