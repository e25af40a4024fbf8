"""Monte-Carlo check of a design before go-live: balance and predictability.

Imbalance is |n_AI − n_manual|. Per run: overall at the end; within-stratum the largest over strata;
marginal, per factor, the largest over its levels. Reported as mean and max over runs.
The correct-guess rate follows Blackwell–Hodges' convergence strategy: before each allocation the
guesser, who knows the earlier allocations in the patient's stratum (as a site's recruiter would),
guesses the arm that is behind (ratio-scaled); a tie counts as half a correct guess.
"""

import hashlib
import random
import statistics
from collections.abc import Mapping

from .design import ARMS, Design
from .engine import allocate
from .state import BalanceState


def _imbalance(counts: Mapping[str, int]) -> int:
    return abs(counts[ARMS[0]] - counts[ARMS[1]])


def _guess_credit(counts: Mapping[str, int], ratio: tuple[int, int], actual: str) -> float:
    scaled = {arm: counts[arm] / share for arm, share in zip(ARMS, ratio, strict=True)}
    if scaled[ARMS[0]] == scaled[ARMS[1]]:
        return 0.5
    behind = min(ARMS, key=lambda arm: scaled[arm])
    return 1.0 if behind == actual else 0.0


def simulate_run(design: Design, patients: int, run_seed: bytes) -> dict:
    chooser = random.Random(run_seed)
    state = BalanceState()
    credit = 0.0
    for _ in range(patients):
        levels = {factor.name: chooser.choice(factor.levels) for factor in design.factors}
        decision = allocate(design, run_seed, state, levels)
        credit += _guess_credit(state.in_stratum(decision.stratum_key), design.ratio, decision.arm)
        state.record(levels, decision.stratum_key, decision.arm)
    overall = {arm: sum(c[arm] for c in state.stratum_counts.values()) for arm in ARMS}
    return {
        "overall": _imbalance(overall),
        "within_stratum": max((_imbalance(c) for c in state.stratum_counts.values()), default=0),
        "marginal": {
            factor.name: max(_imbalance(state.at_level(factor.name, level)) for level in factor.levels)
            for factor in design.factors
        },
        "correct_guess_rate": credit / patients if patients else 0.0,
    }


def _summary(values: list[float]) -> dict:
    return {"mean": round(statistics.fmean(values), 4), "max": max(values)}


def simulate(design: Design, patients: int, runs: int, seed: int = 0) -> dict:
    if patients < 1 or runs < 1:
        raise ValueError("patients and runs must both be at least 1.")
    results = [
        simulate_run(design, patients, hashlib.sha256(f"simulation|{seed}|{run}".encode()).digest())
        for run in range(runs)
    ]
    return {
        "method": design.method,
        "patients": patients,
        "runs": runs,
        "overall_imbalance": _summary([r["overall"] for r in results]),
        "within_stratum_imbalance": _summary([r["within_stratum"] for r in results]),
        "marginal_imbalance": {
            factor.name: _summary([r["marginal"][factor.name] for r in results]) for factor in design.factors
        },
        "correct_guess_rate": round(statistics.fmean(r["correct_guess_rate"] for r in results), 4),
    }
