"""The pure allocation code: block balance, minimisation's choice, determinism, design errors."""

import random

import pytest

from trial import demo_design
from trial.randomisation import ARMS, BalanceState, Design, DesignError, Factor, StratumError, allocate, blocks
from trial.randomisation.minimisation import choose_arm, imbalance_scores

SEED = bytes(range(32))


def test_every_block_is_balanced_and_sizes_come_from_the_allowed_set():
    seen_sizes = set()
    for k, block in zip(range(300), blocks.iter_blocks(SEED, "s=1", (2, 4, 6), (1, 1)), strict=False):
        assert block.count("ai") == block.count("manual"), f"block {k} unbalanced: {block}"
        seen_sizes.add(len(block))
    assert seen_sizes == {2, 4, 6}


def test_unequal_ratio_blocks_keep_the_ratio():
    for block in [b for _, b in zip(range(100), blocks.iter_blocks(SEED, "s", (3, 6), (2, 1)), strict=False)]:
        assert block.count("ai") == 2 * block.count("manual")


def test_within_stratum_imbalance_never_exceeds_half_the_largest_block():
    design = demo_design.design("blocks")
    state = BalanceState()
    rng = random.Random(7)
    for _ in range(2000):
        levels = {f.name: rng.choice(f.levels) for f in design.factors}
        decision = allocate(design, SEED, state, levels)
        state.record(levels, decision.stratum_key, decision.arm)
        counts = state.in_stratum(decision.stratum_key)
        assert abs(counts["ai"] - counts["manual"]) <= 3


def test_allocation_is_a_function_of_seed_and_history_only():
    design = demo_design.design("minimisation")
    levels = {"site": "AAR", "subsite": "larynx", "t_stage": "T3-4"}
    first = [allocate(design, SEED, BalanceState(), levels).arm for _ in range(3)]
    assert len(set(first)) == 1
    arms_by_seed = {allocate(design, bytes([i]) * 32, BalanceState(), levels).arm for i in range(40)}
    assert arms_by_seed == set(ARMS), "different secrets must be able to give different arms"


def test_blocks_differ_between_strata_and_seeds():
    a = [blocks.arm_at(SEED, "stratum-a", i, (2, 4, 6), (1, 1)) for i in range(60)]
    b = [blocks.arm_at(SEED, "stratum-b", i, (2, 4, 6), (1, 1)) for i in range(60)]
    c = [blocks.arm_at(b"other" * 8, "stratum-a", i, (2, 4, 6), (1, 1)) for i in range(60)]
    assert a != b and a != c


def test_minimisation_prefers_the_arm_that_reduces_imbalance():
    counts = {"site": {"ai": 3, "manual": 1}, "subsite": {"ai": 2, "manual": 2}}
    scores = imbalance_scores(counts, (1, 1))
    assert scores == {"ai": 4.0, "manual": 2.0}  # site 3+subsite 1 vs site 1+subsite 1
    assert choose_arm(scores, (1, 1), p=0.8, u_prefer=0.79, u_tie=0.0) == "manual"
    assert choose_arm(scores, (1, 1), p=0.8, u_prefer=0.81, u_tie=0.0) == "ai"


def test_minimisation_breaks_ties_by_the_ratio():
    scores = {"ai": 1.0, "manual": 1.0}
    assert choose_arm(scores, (2, 1), p=0.8, u_prefer=0.0, u_tie=0.66) == "ai"
    assert choose_arm(scores, (2, 1), p=0.8, u_prefer=0.0, u_tie=0.67) == "manual"


def test_deterministic_minimisation_with_p_one_keeps_margins_within_one():
    design = demo_design.design("minimisation", preferred_arm_probability=1.0)
    state = BalanceState()
    rng = random.Random(3)
    for _ in range(400):
        levels = {f.name: rng.choice(f.levels) for f in design.factors}
        decision = allocate(design, SEED, state, levels)
        state.record(levels, decision.stratum_key, decision.arm)
    total = {arm: sum(c[arm] for c in state.stratum_counts.values()) for arm in ARMS}
    assert abs(total["ai"] - total["manual"]) <= 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "coin"}, "Unknown randomisation method"),
        ({"block_sizes": (2, 3)}, "must be positive multiples of 2"),
        ({"ratio": (0, 1)}, "positive whole number"),
        ({"preferred_arm_probability": 0.3}, "between 0.5 and 1"),
    ],
)
def test_design_errors_name_the_problem(kwargs, message):
    base = {"method": "blocks", "factors": (Factor("site", ("A", "B")),)}
    with pytest.raises(DesignError, match=message):
        Design(**{**base, **kwargs})


def test_unknown_or_missing_levels_are_named():
    design = demo_design.design("blocks")
    with pytest.raises(StratumError, match="'nasopharynx' is not a level of stratification factor 'subsite'"):
        design.stratum_key({"site": "AAR", "subsite": "nasopharynx", "t_stage": "T1-2"})
    with pytest.raises(StratumError, match="'t_stage' is missing"):
        design.stratum_key({"site": "AAR", "subsite": "larynx"})
    with pytest.raises(StratumError, match="Unknown stratification factor"):
        design.stratum_key({"site": "AAR", "subsite": "larynx", "t_stage": "T1-2", "hpv": "pos"})
