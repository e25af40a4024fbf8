"""One allocation, the same code path for the live system and the simulator."""

from collections.abc import Mapping

from . import blocks, draws, minimisation
from .design import Decision, Design
from .state import BalanceState


def allocate(design: Design, seed: bytes, state: BalanceState, levels: Mapping[str, str]) -> Decision:
    """Decide the arm of the next patient (trial-wide sequence number `state.total`)."""
    checked = design.check_levels(levels)
    key = design.stratum_key(checked)
    counts = state.in_stratum(key)
    position = sum(counts.values())
    if design.method == "blocks":
        arm = blocks.arm_at(seed, key, position, design.block_sizes, design.ratio)
    else:
        level_counts = {name: state.at_level(name, value) for name, value in checked.items()}
        scores = minimisation.imbalance_scores(level_counts, design.ratio, design.factor_weights)
        arm = minimisation.choose_arm(
            scores,
            design.ratio,
            design.preferred_arm_probability,
            u_prefer=draws.uniform(seed, "minimisation-prefer", state.total),
            u_tie=draws.uniform(seed, "minimisation-tie", state.total),
        )
    return Decision(arm=arm, stratum_key=key, stratum_position=position)
