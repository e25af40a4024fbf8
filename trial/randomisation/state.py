"""Counts of earlier allocations: what every method needs to know about the past."""

from collections import defaultdict
from dataclasses import dataclass, field

from .design import ARMS


def _zero() -> dict[str, int]:
    return dict.fromkeys(ARMS, 0)


@dataclass
class BalanceState:
    """Allocations so far, per stratum and per factor level (margins)."""

    stratum_counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(_zero))
    margin_counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(_zero))
    total: int = 0

    def record(self, levels: dict[str, str], stratum_key: str, arm: str, count: int = 1) -> None:
        self.stratum_counts[stratum_key][arm] += count
        for name, value in levels.items():
            self.margin_counts[(name, value)][arm] += count
        self.total += count

    def in_stratum(self, stratum_key: str) -> dict[str, int]:
        return self.stratum_counts.get(stratum_key) or _zero()

    def at_level(self, factor: str, level: str) -> dict[str, int]:
        return self.margin_counts.get((factor, level)) or _zero()
