"""Blinding indices for the expert panel's "Which arm do you think this case was?" answers.

The panel is meant to be blind to whether a GTV came from the AI arm or the manual arm. The statisticians report
two standard indices, computed here from (true_arm, guess) pairs so the export needs no R:

* Bang's index (Bang, Ni & Davis 2004, Controlled Clinical Trials 25:143-156), one per arm, in [-1, 1].
* James' index (James, Bloch, Lee, Kraemer & Fuller 1996, Statistics in Medicine 15:1421-1434), over both arms,
  in [0, 1].

Both follow the 2x3 (guess ai / manual / don't know) formulas as implemented in the R package ``BI`` (Schwartz &
Mercaldo, written with H. Bang's help), which is the de-facto reference; differences are listed per function.

Assumption shared by both: every answer is an independent multinomial draw. Panel members rate many cases, so the
standard errors ignore clustering by rater and are optimistic if raters differ; the 95% intervals are Wald
intervals (estimate +/- 1.96 SE), not clipped to the index's range, exactly as in the R package.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

ARMS = ("ai", "manual")
DONT_KNOW = "dont_know"
GUESSES = (*ARMS, DONT_KNOW)

#: Two-sided 95% normal quantile, derived rather than typed so it cannot be mistyped.
Z_95 = NormalDist().inv_cdf(0.975)

#: James' disagreement weights for the non-"don't know" cells: 0 for a correct guess, 1/2 for an incorrect one.
#: ("Don't know" carries weight 1 through the P_DK term.) kappa_d is invariant to rescaling these.
JAMES_INCORRECT_WEIGHT = 0.5


@dataclass(frozen=True)
class BangIndex:
    """Bang's index for one arm; statistics are None where undefined (no answers for the arm)."""

    n: int
    correct: int
    incorrect: int
    dont_know: int
    index: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class JamesIndex:
    """James' index over both arms; statistics are None where undefined (see ``james_index``)."""

    n: int
    index: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None


def _tally(guesses: Iterable[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """Count (true_arm, guess) cells, refusing anything outside the questionnaire so typos cannot skew an index."""
    counts: Counter[tuple[str, str]] = Counter()
    for true_arm, guess in guesses:
        if true_arm not in ARMS:
            raise ValueError(f"unknown true arm {true_arm!r}; expected one of {ARMS}")
        if guess not in GUESSES:
            raise ValueError(f"unknown guess {guess!r}; expected one of {GUESSES}")
        counts[true_arm, guess] += 1
    return counts


def _wald(index: float, se: float) -> tuple[float, float]:
    return index - Z_95 * se, index + Z_95 * se


def bang_index(guesses: Iterable[tuple[str, str]]) -> dict[str, BangIndex]:
    """Bang's blinding index per true arm, keyed "ai" and "manual".

    For arm j with n_j answers, of which c_j correct, i_j incorrect and the rest "don't know" (Bang 2004, 2x3 case)::

        BI_j = (2 c_j / (c_j + i_j) - 1) * (c_j + i_j) / n_j  =  (c_j - i_j) / n_j
        Var(BI_j) = [p_c (1 - p_c) + p_i (1 - p_i) + 2 p_c p_i] / n_j,   p_c = c_j / n_j,  p_i = i_j / n_j

    The variance is the exact multinomial variance of p_c - p_i (Cov(p_c, p_i) = -p_c p_i / n_j), as in the paper
    and the R ``BI`` package. 1 = everyone unblinded, 0 = random guessing (or all "don't know"), -1 = everyone
    guesses the opposite arm. Unlike R, which yields NaN when an arm has only "don't know" answers (0/0 in the
    first factor), the simplified form is used, giving 0 with SE 0. An arm with no answers gets None statistics.
    """
    counts = _tally(guesses)
    result = {}
    for arm in ARMS:
        correct = counts[arm, arm]
        incorrect = sum(counts[arm, guess] for guess in ARMS if guess != arm)
        dont_know = counts[arm, DONT_KNOW]
        n = correct + incorrect + dont_know
        index = se = ci_low = ci_high = None
        if n:
            p_c, p_i = correct / n, incorrect / n
            index = p_c - p_i
            se = math.sqrt((p_c * (1 - p_c) + p_i * (1 - p_i) + 2 * p_c * p_i) / n)
            ci_low, ci_high = _wald(index, se)
        result[arm] = BangIndex(n, correct, incorrect, dont_know, index, se, ci_low, ci_high)
    return result


def _james_weight(guess: str, true_arm: str) -> float:
    return 0.0 if guess == true_arm else JAMES_INCORRECT_WEIGHT


def james_index(guesses: Iterable[tuple[str, str]]) -> JamesIndex:
    """James' blinding index over both arms: 1 = complete blinding, 0.5 = random guessing, 0 = complete unblinding.

    All proportions are of the n answers. For guess g and true arm j in {ai, manual}: p_gj the cell proportion,
    P_DK the "don't know" proportion, p_g. = sum_j p_gj and p'_.j = sum_g p_gj (arm margin among non-DK answers),
    and w_gj = 0 if g = j else 1/2 (James' weights)::

        P_o   = sum_gj w_gj p_gj / (1 - P_DK)                      observed disagreement among non-DK answers
        P_e   = sum_gj w_gj p_g. p'_.j / (1 - P_DK)^2              disagreement expected if guess ignored the arm
        k_d   = (P_o - P_e) / P_e
        BI    = (1 + P_DK + (1 - P_DK) k_d) / 2
        Var   = (V1 + V2) / n
        V1    = (1 - P_DK)^2 sum_gj p_gj [(1 - P_DK) w_gj - (1 + k_d) sum_r (w_rj p_r. + w_gr p'_.r)]^2
                / (4 [sum_gj w_gj p_g. p'_.j]^2)
        V2    = P_DK (1 - P_DK) - (1 - P_DK)(1 + k_d)(P_DK + (1 - P_DK)(1 + k_d) / 4)

    This is James et al.'s large-sample variance as coded in the R ``BI`` package; it equals the multinomial
    delta-method variance of BI (checked numerically in the tests). Note that all-incorrect answers also score 1
    (opposite guessing looks "blind" to this index), which is why Bang's per-arm index is reported beside it.

    Edge cases: no answers gives None statistics; only "don't know" answers gives BI = 1, SE = 0 (James 1996
    p. 1425; R does this only when both arms have answers, we do it whenever n > 0 since P_DK = 1 forces BI = 1);
    P_e = 0 (non-DK answers all from one arm, or guesses that make disagreement impossible by chance) leaves k_d
    undefined, so the statistics are None where R gives NaN. Float noise that makes the variance slightly negative
    at the degenerate extremes (e.g. all answers wrong, where it is exactly 0) is clamped to 0.
    """
    counts = _tally(guesses)
    n = sum(counts.values())
    if n == 0:
        return JamesIndex(0, None, None, None, None)
    n_dk = sum(counts[arm, DONT_KNOW] for arm in ARMS)
    if n_dk == n:
        return JamesIndex(n, 1.0, 0.0, 1.0, 1.0)
    p = {(guess, arm): counts[arm, guess] / n for guess in ARMS for arm in ARMS}
    p_dk = n_dk / n
    q = 1 - p_dk
    guess_margin = {g: sum(p[g, arm] for arm in ARMS) for g in ARMS}
    arm_margin = {arm: sum(p[g, arm] for g in ARMS) for arm in ARMS}
    cells = [(g, arm) for g in ARMS for arm in ARMS]
    expected = sum(_james_weight(g, arm) * guess_margin[g] * arm_margin[arm] for g, arm in cells)
    if expected == 0:
        return JamesIndex(n, None, None, None, None)
    observed = sum(_james_weight(g, arm) * p[g, arm] for g, arm in cells)
    p_o = observed / q
    p_e = expected / q**2
    k_d = (p_o - p_e) / p_e
    index = (1 + p_dk + q * k_d) / 2

    v1_num = 0.0
    for g, arm in cells:
        extra = sum(_james_weight(r, arm) * guess_margin[r] + _james_weight(g, r) * arm_margin[r] for r in ARMS)
        v1_num += p[g, arm] * q**2 * (q * _james_weight(g, arm) - (1 + k_d) * extra) ** 2
    v1 = v1_num / (4 * expected**2)
    v2 = p_dk * q - q * (1 + k_d) * (p_dk + q * (1 + k_d) / 4)
    se = math.sqrt(max((v1 + v2) / n, 0.0))
    ci_low, ci_high = _wald(index, se)
    return JamesIndex(n, index, se, ci_low, ci_high)
