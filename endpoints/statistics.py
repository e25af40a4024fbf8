"""Distribution-free statistics for the trial's endpoints (delineation time, size of the panel's corrections).

Pure numpy/scipy, no Django, so the analysis can be re-run and audited outside the application and checked
against R. Missing endpoints arrive as NaN (or None): every function drops them and reports how many it
dropped, but refuses input that is empty or entirely missing, because a statistic computed on nothing would
otherwise reach a report as a number.

Conventions follow R's ``wilcox.test`` wherever the two overlap, so a statistician can reproduce the tables:
the rank-sum statistic is the Mann-Whitney U of the first sample (R's ``W``), and the shift is first sample
minus second (``ai`` minus ``manual``, say).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Hashable, Iterable, Sequence
from functools import lru_cache
from itertools import accumulate
from typing import NamedTuple

import numpy as np
from scipy import stats

EXACT_LIMIT = 50
"""R's ``wilcox.test`` computes exactly only while both samples are smaller than this (and nothing is tied)."""

TIME_SAVED_SMALL = "time saved, small corrections"
TIME_SAVED_LARGE = "time saved, large corrections"
NO_TIME_SAVED_SMALL = "no time saved, small corrections"
NO_TIME_SAVED_LARGE = "no time saved, large corrections"
QUADRANT_LABELS = (TIME_SAVED_SMALL, TIME_SAVED_LARGE, NO_TIME_SAVED_SMALL, NO_TIME_SAVED_LARGE)


class ShiftEstimate(NamedTuple):
    """Hodges-Lehmann shift of x relative to y with its distribution-free confidence interval."""

    estimate: float
    ci_low: float
    ci_high: float
    n_x: int
    n_y: int
    method: str  # "exact" or "normal"
    confidence: float  # achieved confidence: below the requested one when tiny samples cannot reach it
    n_dropped: int  # NaN (missing) values left out of x and y together


class TestResult(NamedTuple):
    """A two-sided test; ``method`` says which distribution gave the p-value."""

    __test__ = False  # not a pytest test class despite the name

    statistic: float
    p_value: float
    method: str
    n_dropped: int = 0
    skipped_strata: tuple = ()  # van Elteren: strata holding only one group, which carry no information


class QuadrantCounts(NamedTuple):
    """Counts per quadrant (all four always present) and the quadrant of each item, None where missing."""

    counts: dict[str, int]
    labels: list[str | None]
    n_dropped: int


# --- input checks ---------------------------------------------------------------------------------------------


def _as_values(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """One-dimensional float array; infinity is refused because no time or correction size is infinite."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric") from exc
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isinf(array).any():
        raise ValueError(f"{name} contains infinite values; use NaN for a missing endpoint")
    return array


def _observed(values: Sequence[float] | np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """The non-missing values and how many were missing, refusing a sample with nothing observed."""
    array = _as_values(values, name)
    keep = ~np.isnan(array)
    if not keep.any():
        raise ValueError(f"{name} has no observed values (all {array.size} are NaN)")
    return array[keep], int(array.size - keep.sum())


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")


def _labels(labels: Sequence[Hashable], name: str, size: int) -> list[Hashable]:
    """Group or stratum labels, one per value; a missing label is refused since it cannot be guessed."""
    labels = list(labels)
    if len(labels) != size:
        raise ValueError(f"{name} has {len(labels)} entries but values has {size}")
    if any(label is None or (isinstance(label, float) and math.isnan(label)) for label in labels):
        raise ValueError(f"{name} contains a missing label")
    return labels


def _sorted_labels(labels: Iterable[Hashable]) -> list[Hashable]:
    """Labels in natural order where they compare, else by repr, so defaults and summing order are stable."""
    try:
        return sorted(labels)
    except TypeError:
        return sorted(labels, key=repr)


# --- rank-sum building blocks ---------------------------------------------------------------------------------


def _tie_term(*samples: np.ndarray) -> float:
    """Σ(t³ − t) over groups of equal values within each sample: what ties take off the rank-sum variance."""
    total = 0.0
    for sample in samples:
        _, counts = np.unique(sample, return_counts=True)
        total += float(np.sum(counts.astype(float) ** 3 - counts))
    return total


def _rank_sum_variance(m: int, n: int, tie_term: float) -> float:
    """Variance of a rank sum (or U) for m against n observations, with the usual midrank tie correction."""
    total = m + n
    return m * n / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))


@lru_cache(maxsize=256)
def _mann_whitney_counts(m: int, n: int) -> tuple[int, ...]:
    """How many of the C(m+n, m) orderings give each U = 0..mn: the coefficients of the q-binomial [m+n, m].

    Built as Π (1 − q^(n+i)) / (1 − q^i) for i = 1..m in exact integers, so quantiles have no rounding to argue
    about; every partial product is itself a q-binomial, hence a polynomial, so the division is exact.
    """
    counts = [1]
    for i in range(1, m + 1):
        shift = n + i
        product = counts + [0] * shift
        for k in range(shift, len(product)):
            product[k] -= counts[k - shift]
        quotient = product[: len(counts) + n]
        for k in range(i, len(quotient)):
            quotient[k] += quotient[k - i]
        counts = quotient
    return tuple(counts)


# --- Hodges-Lehmann shift -------------------------------------------------------------------------------------


def _use_exact(x: np.ndarray, y: np.ndarray) -> bool:
    """R's rule: exact while both samples are under 50 and no value is tied across the pooled sample."""
    pooled = np.concatenate([x, y])
    return x.size < EXACT_LIMIT and y.size < EXACT_LIMIT and np.unique(pooled).size == pooled.size


def _exact_k(m: int, n: int, alpha: float) -> tuple[int, float]:
    """Order k of the exact bounds and the confidence they achieve, as R's ``qwilcox(alpha/2, m, n)``.

    k is the smallest q with P(U ≤ q) ≥ α/2 (with R's 10·eps fuzz), raised to 1 when the samples are too small
    for any interval to reach the requested confidence; [D(k), D(mn+1−k)] then covers with 1 − 2·P(U ≤ k−1).
    """
    counts = _mann_whitney_counts(m, n)
    total = math.comb(m + n, m)
    target = alpha / 2 - 10 * sys.float_info.epsilon
    q = next(q for q, cumulative in enumerate(accumulate(counts)) if cumulative / total >= target)
    k = max(q, 1)
    return k, 1.0 - 2.0 * sum(counts[:k]) / total


def _normal_k(x: np.ndarray, y: np.ndarray, alpha: float) -> int:
    """Order k of the normal-approximation bounds, the point where R's ``uniroot`` on the corrected z lands.

    R inverts z(d) = (U(d) − mn/2 ∓ ½) / σ; U(d) only steps at pairwise differences, so its root is the k-th
    difference with k = ⌊mn/2 + ½ − z₁₋α/₂·σ⌋. Between differences x − d and y share no value, so σ carries the
    tie correction of ties within x and within y only, exactly as R evaluates it there.
    """
    m, n = x.size, y.size
    sigma = math.sqrt(_rank_sum_variance(m, n, _tie_term(x, y)))
    z = float(stats.norm.ppf(1.0 - alpha / 2))
    return max(math.floor(m * n / 2 + 0.5 - z * sigma), 1)


def hodges_lehmann(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> ShiftEstimate:
    """Hodges-Lehmann shift x − y (median of all pairwise differences) with the Moses/Bauer (1972) interval.

    The interval is [D(k), D(mn+1−k)], the k-th smallest and k-th largest of the mn sorted differences, i.e.
    the shifts a two-sided rank-sum test would not reject. As in R's ``wilcox.test(x, y, conf.int=TRUE)``, k
    comes from the exact Mann-Whitney distribution while both samples have fewer than 50 values and there are no
    ties in the pooled sample, and otherwise from the normal approximation with continuity correction. The
    estimate is always the median of differences: R's exact estimate, and the root R's normal branch solves for
    (which R returns only to ``uniroot``'s 1e-4 tolerance, as it does the normal-branch bounds).
    """
    _check_confidence(confidence)
    xs, dropped_x = _observed(x, "x")
    ys, dropped_y = _observed(y, "y")
    diffs = np.sort(np.subtract.outer(xs, ys).ravel())
    alpha = 1.0 - confidence
    if _use_exact(xs, ys):
        k, achieved = _exact_k(xs.size, ys.size, alpha)
        method = "exact"
    else:
        k, achieved = _normal_k(xs, ys, alpha), confidence
        method = "normal"
    return ShiftEstimate(
        estimate=float(np.median(diffs)),
        ci_low=float(diffs[k - 1]),
        ci_high=float(diffs[diffs.size - k]),
        n_x=int(xs.size),
        n_y=int(ys.size),
        method=method,
        confidence=achieved,
        n_dropped=dropped_x + dropped_y,
    )


# --- tests ----------------------------------------------------------------------------------------------------


def _scipy_auto_method(x: np.ndarray, y: np.ndarray) -> str:
    """Which distribution scipy's ``method="auto"`` uses: exact unless both exceed 8 values or anything ties."""
    pooled = np.concatenate([x, y])
    ties = np.unique(pooled).size < pooled.size
    return "asymptotic" if (x.size > 8 and y.size > 8) or ties else "exact"


def mann_whitney(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> TestResult:
    """Two-sided Mann-Whitney U test; the statistic is the U of x (R's ``W``) so its direction is readable."""
    xs, dropped_x = _observed(x, "x")
    ys, dropped_y = _observed(y, "y")
    result = stats.mannwhitneyu(xs, ys, alternative="two-sided", method="auto")
    if _scipy_auto_method(xs, ys) == "exact":
        method = "Mann-Whitney U, exact"
    else:
        method = "Mann-Whitney U, normal approximation with tie and continuity correction"
    return TestResult(float(result.statistic), float(result.pvalue), method, dropped_x + dropped_y)


def _stratum_terms(values: np.ndarray, in_group1: np.ndarray) -> tuple[float, float]:
    """Weighted centred rank sum of group 1 in one stratum and its weighted variance, weight 1/(n_s + 1).

    The weight is van Elteren's locally most powerful choice: it turns rank sums into something like mean
    proportions of ranks, so large strata do not swamp small ones the way a plain sum of rank sums would.
    """
    size = values.size
    m = int(in_group1.sum())
    ranks = stats.rankdata(values)
    weight = 1.0 / (size + 1)
    centred = float(ranks[in_group1].sum()) - m * (size + 1) / 2.0
    variance = _rank_sum_variance(m, size - m, _tie_term(values))
    return weight * centred, weight**2 * variance


def van_elteren(
    values: Sequence[float] | np.ndarray,
    groups: Sequence[Hashable],
    strata: Sequence[Hashable],
    *,
    group1: Hashable | None = None,
) -> TestResult:
    """Van Elteren (1960) stratified Wilcoxon test of a shift between two groups, two-sided.

    Within stratum s, W_s is group 1's rank sum with midranks, E_s = m_s(n_s + 1)/2 and Var_s the tie-corrected
    rank-sum variance; the statistic Z = Σ w_s(W_s − E_s) / √(Σ w_s² Var_s) with w_s = 1/(n_s + 1) is referred to
    the standard normal (no continuity correction). With one stratum it is the ordinary normal-approximation
    rank-sum test. Strata containing only one group carry no information and are skipped (and listed).
    ``group1`` fixes the sign of Z (positive: group 1 ranks higher); by default it is the first label in sorted
    order, "A" or "ai". Strata are summed in sorted order so the result does not depend on row order.
    """
    vals = _as_values(values, "values")
    group_labels = _labels(groups, "groups", vals.size)
    stratum_labels = _labels(strata, "strata", vals.size)
    keep = ~np.isnan(vals)
    if not keep.any():
        raise ValueError(f"values has no observed values (all {vals.size} are NaN)")
    arms = _sorted_labels({g for g, k in zip(group_labels, keep, strict=True) if k})
    if len(arms) != 2:
        raise ValueError(f"groups must hold exactly two labels among observed values, got {arms!r}")
    if group1 is None:
        group1 = arms[0]
    elif group1 not in arms:
        raise ValueError(f"group1 {group1!r} is not one of the groups {arms!r}")
    is_group1 = np.array([g == group1 for g in group_labels])
    rows_by_stratum: dict[Hashable, list[int]] = {}
    for row in np.flatnonzero(keep):
        rows_by_stratum.setdefault(stratum_labels[row], []).append(int(row))
    numerator = variance = 0.0
    skipped = []
    for stratum in _sorted_labels(rows_by_stratum):
        rows = rows_by_stratum[stratum]
        in_group1 = is_group1[rows]
        if in_group1.all() or not in_group1.any():
            skipped.append(stratum)
            continue
        term, term_variance = _stratum_terms(vals[rows], in_group1)
        numerator += term
        variance += term_variance
    if len(skipped) == len(rows_by_stratum):
        raise ValueError("no stratum contains both groups; the stratified comparison is undefined")
    if variance == 0.0:
        raise ValueError("all values are tied within every stratum; the rank test is undefined")
    z = numerator / math.sqrt(variance)
    method = f"van Elteren stratified Wilcoxon, normal approximation, group1={group1!r}"
    return TestResult(z, float(2.0 * stats.norm.sf(abs(z))), method, int((~keep).sum()), tuple(skipped))


# --- descriptive ----------------------------------------------------------------------------------------------


def _quadrant(saved: float, size: float, time_threshold: float, size_threshold: float) -> str:
    """Saving must exceed the threshold (breaking even saves nothing); a size at the threshold counts as small."""
    if saved > time_threshold:
        return TIME_SAVED_SMALL if size <= size_threshold else TIME_SAVED_LARGE
    return NO_TIME_SAVED_SMALL if size <= size_threshold else NO_TIME_SAVED_LARGE


def quadrants(
    time_saved: Sequence[float] | np.ndarray,
    correction_size: Sequence[float] | np.ndarray,
    *,
    time_threshold: float = 0.0,
    size_threshold: float,
) -> QuadrantCounts:
    """Classify each AI-arm patient (or matched pair) into the 2×2 plot of time saved against correction size.

    A plain classifier with the cut-offs as parameters, so the plot and any table built from it agree on who
    lands where. Items missing either measure get label None and are counted as dropped.
    """
    saved = _as_values(time_saved, "time_saved")
    sizes = _as_values(correction_size, "correction_size")
    if saved.size != sizes.size:
        raise ValueError(f"time_saved has {saved.size} entries but correction_size has {sizes.size}")
    if not (math.isfinite(time_threshold) and math.isfinite(size_threshold)):
        raise ValueError("time_threshold and size_threshold must be finite numbers")
    missing = np.isnan(saved) | np.isnan(sizes)
    if missing.all():
        raise ValueError(f"no item has both time_saved and correction_size observed (all {saved.size} missing)")
    labels: list[str | None] = [
        None if gone else _quadrant(float(s), float(c), time_threshold, size_threshold)
        for s, c, gone in zip(saved, sizes, missing, strict=True)
    ]
    counts = {label: labels.count(label) for label in QUADRANT_LABELS}
    return QuadrantCounts(counts, labels, int(missing.sum()))


def summary(values: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Median, quartiles, range, mean and SD of the observed values, with the count of missing ones.

    Quartiles are numpy's default linear interpolation, the same as R's default ``quantile`` (type 7); the SD
    uses n − 1 and is NaN for a single value rather than a misleading zero.
    """
    vals, dropped = _observed(values, "values")
    q1, median, q3 = np.quantile(vals, [0.25, 0.5, 0.75])
    return {
        "n": int(vals.size),
        "n_missing": dropped,
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(vals.min()),
        "max": float(vals.max()),
        "mean": float(vals.mean()),
        "sd": float(np.std(vals, ddof=1)) if vals.size > 1 else math.nan,
    }
