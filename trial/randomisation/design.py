"""What a trial's randomisation is: arms, ratio, strata factors and method parameters."""

from collections.abc import Mapping
from dataclasses import dataclass, field

ARMS = ("ai", "manual")
ARM_LABELS = {"ai": "AI-assisted", "manual": "Manual"}
METHODS = ("blocks", "minimisation")


class DesignError(ValueError):
    """The design itself is inconsistent (a set-up mistake, not a patient's data)."""


class StratumError(ValueError):
    """A patient's stratification factors do not match the design."""


@dataclass(frozen=True)
class Factor:
    name: str
    levels: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    arm: str
    stratum_key: str
    stratum_position: int  # 0-based count of earlier allocations in the same stratum


@dataclass(frozen=True)
class Design:
    method: str
    factors: tuple[Factor, ...]
    ratio: tuple[int, int] = (1, 1)
    block_sizes: tuple[int, ...] = (2, 4, 6)
    preferred_arm_probability: float = 0.8
    factor_weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DesignError(f"Unknown randomisation method {self.method!r}; use one of {', '.join(METHODS)}.")
        if len(self.ratio) != len(ARMS) or min(self.ratio) < 1:
            raise DesignError(f"Allocation ratio {self.ratio} must give a positive whole number for each arm.")
        if not self.factors:
            raise DesignError("At least one stratification factor is required.")
        names = [f.name for f in self.factors]
        if len(set(names)) != len(names):
            raise DesignError(f"Stratification factor names repeat: {names}.")
        for factor in self.factors:
            if not factor.levels or len(set(factor.levels)) != len(factor.levels):
                raise DesignError(f"Factor {factor.name!r} needs distinct levels, got {list(factor.levels)}.")
        if self.method == "blocks":
            unit = sum(self.ratio)
            bad = [size for size in self.block_sizes if size <= 0 or size % unit]
            if not self.block_sizes or bad:
                raise DesignError(
                    f"Block sizes {list(self.block_sizes)} must be positive multiples of {unit} "
                    f"(the sum of the allocation ratio {self.ratio[0]}:{self.ratio[1]})."
                )
        if not 0.5 <= self.preferred_arm_probability <= 1.0:
            raise DesignError("The probability of the preferred arm must lie between 0.5 and 1.")

    def factor(self, name: str) -> Factor:
        for factor in self.factors:
            if factor.name == name:
                return factor
        raise StratumError(f"Unknown stratification factor {name!r}; the factors are {self.factor_names}.")

    @property
    def factor_names(self) -> list[str]:
        return [f.name for f in self.factors]

    def check_levels(self, levels: Mapping[str, str]) -> dict[str, str]:
        """Return the patient's levels in design order, or name exactly what is wrong."""
        unknown = sorted(set(levels) - set(self.factor_names))
        if unknown:
            raise StratumError(f"Unknown stratification factor(s) {unknown}; the factors are {self.factor_names}.")
        checked = {}
        for factor in self.factors:
            if factor.name not in levels or levels[factor.name] in (None, ""):
                raise StratumError(
                    f"Stratification factor {factor.name!r} is missing; choose one of {list(factor.levels)}."
                )
            value = str(levels[factor.name])
            if value not in factor.levels:
                raise StratumError(
                    f"{value!r} is not a level of stratification factor {factor.name!r}; "
                    f"choose one of {list(factor.levels)}."
                )
            checked[factor.name] = value
        return checked

    def stratum_key(self, levels: Mapping[str, str]) -> str:
        checked = self.check_levels(levels)
        return "|".join(f"{name}={value}" for name, value in checked.items())
