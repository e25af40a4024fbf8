"""Pocock–Simon minimisation with a random element (biased coin).

For each candidate arm, add the patient hypothetically and sum over factors the range of the
ratio-scaled counts at the patient's level. The arm with the smaller sum is preferred and given with
probability p; ties are broken at random in proportion to the allocation ratio.
"""

from collections.abc import Mapping, Sequence

from .design import ARMS


def imbalance_scores(
    level_counts: Mapping[str, Mapping[str, int]],
    ratio: Sequence[int],
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Total weighted imbalance if the patient went to each arm. `level_counts`: factor → arm → n."""
    weights = weights or {}
    scores = {}
    for candidate in ARMS:
        total = 0.0
        for factor, counts in level_counts.items():
            scaled = [
                (counts.get(arm, 0) + (1 if arm == candidate else 0)) / share
                for arm, share in zip(ARMS, ratio, strict=True)
            ]
            total += weights.get(factor, 1.0) * (max(scaled) - min(scaled))
        scores[candidate] = total
    return scores


def choose_arm(scores: Mapping[str, float], ratio: Sequence[int], p: float, u_prefer: float, u_tie: float) -> str:
    """Pick the arm from imbalance scores given two uniform draws in [0, 1)."""
    best = min(scores.values())
    preferred = [arm for arm in ARMS if scores[arm] == best]
    if len(preferred) == len(ARMS):
        threshold = ratio[0] / sum(ratio)
        return ARMS[0] if u_tie < threshold else ARMS[1]
    (arm,) = preferred
    other = next(a for a in ARMS if a != arm)
    return arm if u_prefer < p else other
