"""Endpoint statistics: hand-computed cases, agreement with scipy, equivariance, and refusals of bad input."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from endpoints import statistics as st

# Hollander & Wolfe's example from R's ?wilcox.test; R prints W = 35, p-value = 0.1272 for alternative = "g".
HW_X = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
HW_Y = [1.15, 0.88, 0.90, 0.74, 1.21]


def _rng(seed=20240601):
    return np.random.default_rng(seed)


def _brute_force_counts(m, n):
    """U of every placement of m x-ranks among m + n, counted: the definition the q-binomial must match."""
    counts = [0] * (m * n + 1)
    for x_ranks in itertools.combinations(range(1, m + n + 1), m):
        counts[sum(x_ranks) - m * (m + 1) // 2] += 1
    return counts


# --- exact Mann-Whitney distribution ------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "n"), [(1, 1), (1, 4), (3, 4), (4, 3), (5, 5), (2, 7), (6, 3)])
def test_exact_counts_match_enumeration(m, n):
    assert list(st._mann_whitney_counts(m, n)) == _brute_force_counts(m, n)


def test_exact_counts_sum_to_binomial_for_the_largest_exact_case():
    counts = st._mann_whitney_counts(49, 49)
    assert sum(counts) == math.comb(98, 49) and len(counts) == 49 * 49 + 1 and counts == counts[::-1]


# --- Hodges-Lehmann -----------------------------------------------------------------------------------------


def test_hodges_lehmann_hand_computed_exact_interval():
    # Differences of x = 5, 7, 9, 11 and y = 1, 2, 3, sorted: 2 3 4 4 5 6 6 7 8 8 9 10 → median 6.
    # U counts for m=4, n=3 (of 35): 1 1 2 3 4 4 5 ...; α/2 = 0.1 is first reached at q = 2 (4/35), so k = 2.
    result = st.hodges_lehmann([5, 7, 9, 11], [1, 2, 3], confidence=0.8)
    assert result.estimate == 6.0
    assert (result.ci_low, result.ci_high) == (3.0, 9.0)
    assert result.method == "exact" and (result.n_x, result.n_y, result.n_dropped) == (4, 3, 0)
    assert result.confidence == pytest.approx(1 - 2 * 2 / 35)


def test_hodges_lehmann_widens_to_the_range_when_confidence_is_unreachable():
    # m=4, n=3: P(U ≤ 0) = 1/35 ≥ 0.025, so R's qwilcox gives 0, raised to 1: the full range, 1 − 2/35 achieved.
    result = st.hodges_lehmann([5, 7, 9, 11], [1, 2, 3])
    assert (result.ci_low, result.ci_high) == (2.0, 10.0)
    assert result.confidence == pytest.approx(1 - 2 / 35)


def test_hodges_lehmann_single_observations():
    result = st.hodges_lehmann([4.0], [1.5])
    assert (result.estimate, result.ci_low, result.ci_high) == (2.5, 2.5, 2.5)
    assert result.confidence == 0.0


def test_hodges_lehmann_is_the_median_of_pairwise_differences():
    x, y = _rng().normal(size=13), _rng(7).normal(size=8)
    assert st.hodges_lehmann(x, y).estimate == pytest.approx(np.median(np.subtract.outer(x, y)))


@pytest.mark.parametrize(("n_x", "n_y"), [(12, 9), (60, 55)])
def test_shifting_y_shifts_estimate_and_interval_the_other_way(n_x, n_y):
    rng = _rng()
    x, y, d = rng.normal(300, 60, n_x), rng.normal(420, 80, n_y), 37.25
    base, shifted = st.hodges_lehmann(x, y), st.hodges_lehmann(x, y + d)
    assert base.method == shifted.method
    for a, b in zip(base[:3], shifted[:3], strict=True):
        assert b == pytest.approx(a - d, abs=1e-9)


@pytest.mark.parametrize(("n_x", "n_y"), [(7, 11), (70, 52)])
def test_swapping_samples_negates_and_mirrors(n_x, n_y):
    rng = _rng(3)
    x, y = rng.gamma(2.0, 100.0, n_x), rng.gamma(2.0, 130.0, n_y)
    forward, backward = st.hodges_lehmann(x, y), st.hodges_lehmann(y, x)
    assert backward.estimate == pytest.approx(-forward.estimate)
    assert (backward.ci_low, backward.ci_high) == pytest.approx((-forward.ci_high, -forward.ci_low))


def test_scaling_scales_the_estimate_and_interval():
    rng = _rng(5)
    x, y = rng.normal(size=9), rng.normal(size=14)
    base, scaled = st.hodges_lehmann(x, y), st.hodges_lehmann(4 * x, 4 * y)
    assert scaled[:3] == pytest.approx(tuple(4 * v for v in base[:3]))


def test_method_follows_r_exact_rule():
    rng = _rng(11)
    assert st.hodges_lehmann(rng.normal(size=49), rng.normal(size=49)).method == "exact"
    assert st.hodges_lehmann(rng.normal(size=50), rng.normal(size=10)).method == "normal"
    assert st.hodges_lehmann([1.0, 2.0, 3.0], [3.0, 4.0]).method == "normal"  # a tie across samples
    assert st.hodges_lehmann([1.0, 1.0, 3.0], [2.0, 4.0]).method == "normal"  # a tie within a sample


def _inversion_p_values(x, y, lower, upper, method):
    """Rank-sum p-values just inside and just outside each bound: the interval is where the test accepts."""
    diffs = np.unique(np.subtract.outer(x, y))
    eps = np.diff(diffs).min() / 4
    kwargs = {"alternative": "two-sided", "method": method}
    if method == "asymptotic":
        kwargs["use_continuity"] = True

    def p(d):
        return stats.mannwhitneyu(x - d, y, **kwargs).pvalue

    return (p(lower + eps), p(upper - eps)), (p(lower - eps), p(upper + eps))


@pytest.mark.parametrize(("n_x", "n_y", "confidence"), [(6, 5, 0.95), (9, 12, 0.9), (20, 15, 0.95), (30, 41, 0.99)])
def test_exact_interval_inverts_scipy_exact_test(n_x, n_y, confidence):
    rng = _rng(n_x * 100 + n_y)
    x, y = rng.normal(1.0, 1.0, n_x), rng.normal(0.0, 1.5, n_y)
    result = st.hodges_lehmann(x, y, confidence)
    assert result.method == "exact"
    inside, outside = _inversion_p_values(x, y, result.ci_low, result.ci_high, "exact")
    alpha = 1 - confidence
    assert min(inside) >= alpha - 1e-12
    assert max(outside) < alpha


def _zero_inflated(rng, n, scale):
    """Correction sizes: many patients need no correction at all, so both arms share a block of tied zeros."""
    return np.where(rng.random(n) < 0.4, 0.0, rng.gamma(2.0, scale, n))


@pytest.mark.parametrize(
    "sample",
    [
        lambda rng: (rng.normal(150, 20, 60), rng.normal(160, 20, 55)),  # large: no ties, every difference distinct
        lambda rng: (_zero_inflated(rng, 30, 10.0), _zero_inflated(rng, 35, 14.0)),  # tied zeros across arms
        lambda rng: (_zero_inflated(rng, 80, 10.0), _zero_inflated(rng, 90, 30.0)),
    ],
)
def test_normal_interval_inverts_scipy_continuity_corrected_test(sample):
    # scipy recomputes ties in (x − d, y) at each d, as R's uniroot does, so this replays R's root search.
    x, y = sample(_rng(29))
    result = st.hodges_lehmann(x, y)
    assert result.method == "normal" and result.confidence == 0.95
    inside, outside = _inversion_p_values(x, y, result.ci_low, result.ci_high, "asymptotic")
    assert min(inside) > 0.05
    assert max(outside) <= 0.05


def test_a_shared_block_of_zeros_can_pin_the_interval_to_zero():
    # Every shift but exactly 0 separates the two blocks of zeros and is rejected, so the acceptance region, and
    # with it the interval (R's too, up to uniroot's tolerance), is the single point 0.
    rng = _rng(29)
    x, y = _zero_inflated(rng, 80, 10.0), _zero_inflated(rng, 90, 12.0)
    result = st.hodges_lehmann(x, y)
    assert (result.estimate, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert stats.mannwhitneyu(x, y, method="asymptotic").pvalue > 0.05
    for d in (-1e-6, 1e-6):
        assert stats.mannwhitneyu(x - d, y, method="asymptotic").pvalue < 0.05


def test_hodges_lehmann_drops_missing_values():
    x, y = [5.0, math.nan, 7, 9, 11], [1.0, 2, None, 3, math.nan]
    result = st.hodges_lehmann(x, y, confidence=0.8)
    assert result.n_dropped == 3 and (result.n_x, result.n_y) == (4, 3)
    assert result[:3] == st.hodges_lehmann([5, 7, 9, 11], [1, 2, 3], confidence=0.8)[:3]


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "message"),
    [
        ([], [1.0], {}, "x is empty"),
        ([1.0], [math.nan, math.nan], {}, "y has no observed values"),
        ([1.0, math.inf], [2.0], {}, "infinite"),
        ([[1.0, 2.0]], [2.0], {}, "one-dimensional"),
        (["a"], [2.0], {}, "numeric"),
        ([1.0], [2.0], {"confidence": 1.0}, "confidence"),
        ([1.0], [2.0], {"confidence": 0.0}, "confidence"),
    ],
)
def test_hodges_lehmann_refuses_bad_input(x, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        st.hodges_lehmann(x, y, **kwargs)


# --- Mann-Whitney ---------------------------------------------------------------------------------------------


def test_mann_whitney_reports_u_of_x_hand_computed():
    # x entirely below y: no pair has x > y, so U_x = 0; exact two-sided p = 2 / C(4, 2) = 1/3.
    result = st.mann_whitney([1.0, 2.0], [3.0, 4.0])
    assert result.statistic == 0.0 and result.p_value == pytest.approx(1 / 3)
    assert result.method == "Mann-Whitney U, exact"
    assert st.mann_whitney([3.0, 4.0], [1.0, 2.0]).statistic == 4.0


def test_mann_whitney_r_help_example():
    result = st.mann_whitney(HW_X, HW_Y)
    assert result.statistic == 35.0
    assert result.p_value == pytest.approx(2 * 0.1272, abs=2e-4)  # R's one-sided p doubled


@pytest.mark.parametrize(("n_x", "n_y", "tied"), [(5, 7, False), (5, 7, True), (20, 30, False), (9, 9, True)])
def test_mann_whitney_matches_scipy_and_names_its_method(n_x, n_y, tied):
    rng = _rng(n_x * n_y)
    x, y = rng.normal(size=n_x), rng.normal(0.5, size=n_y)
    if tied:
        x, y = np.round(x), np.round(y)
    result = st.mann_whitney(x, y)
    reference = stats.mannwhitneyu(x, y, alternative="two-sided")
    assert (result.statistic, result.p_value) == (reference.statistic, reference.pvalue)
    explicit = "exact" if result.method.endswith("exact") else "asymptotic"
    assert stats.mannwhitneyu(x, y, alternative="two-sided", method=explicit).pvalue == result.p_value


def test_mann_whitney_drops_missing_and_refuses_nothing():
    result = st.mann_whitney([1.0, math.nan, 2.0], [3.0, 4.0, math.nan])
    assert result.n_dropped == 2 and result.statistic == 0.0
    with pytest.raises(ValueError, match="x has no observed values"):
        st.mann_whitney([math.nan], [1.0])
    with pytest.raises(ValueError, match="y is empty"):
        st.mann_whitney([1.0], [])


# --- van Elteren ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [False, True])
def test_van_elteren_single_stratum_is_the_plain_normal_rank_sum_test(tied):
    rng = _rng(17)
    x, y = rng.normal(size=14), rng.normal(0.6, size=11)
    if tied:
        x, y = np.round(x * 2), np.round(y * 2)
    values = np.concatenate([x, y])
    groups = ["ai"] * x.size + ["manual"] * y.size
    result = st.van_elteren(values, groups, ["all"] * values.size)
    reference = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=False)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.skipped_strata == () and result.n_dropped == 0


def _two_strata():
    # S1: group a = 1, 3; b = 2, 4, 5 → ranks 1..5, W = 4, E = 6, Var = (2·3/12)·6 = 3, weight 1/6.
    # S2: group a = 7, 7; b = 7, 9 → midranks 2, 2 | 2, 4, W = 4, E = 5, ties Σ(t³−t) = 24,
    #     Var = (2·2/12)·(5 − 24/12) = 1, weight 1/5.
    values = [1, 3, 2, 4, 5, 7, 7, 7, 9]
    groups = ["a", "a", "b", "b", "b", "a", "a", "b", "b"]
    strata = ["S1"] * 5 + ["S2"] * 4
    return values, groups, strata


def test_van_elteren_hand_computed_two_strata():
    z = (-2 / 6 - 1 / 5) / math.sqrt(3 / 36 + 1 / 25)  # = −(8/15) / √(37/300)
    result = st.van_elteren(*_two_strata())
    assert result.statistic == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-12)
    assert "group1='a'" in result.method


def test_van_elteren_group1_sets_the_sign_only():
    default, flipped = st.van_elteren(*_two_strata()), st.van_elteren(*_two_strata(), group1="b")
    assert flipped.statistic == pytest.approx(-default.statistic) and flipped.p_value == pytest.approx(default.p_value)


def _stratified_sample(seed=23):
    rng = _rng(seed)
    strata = rng.choice(["oral|T1", "oral|T2", "larynx|T3", "oropharynx|T2"], size=80)
    groups = rng.choice(["A", "B"], size=80)
    values = np.round(rng.normal(200, 40, 80) - 25 * (groups == "A") + 10 * (strata == "larynx|T3"))
    return values, groups, strata


def test_van_elteren_invariant_to_relabelling_strata_and_row_order():
    values, groups, strata = _stratified_sample()
    base = st.van_elteren(values, groups, strata)
    renamed = {"oral|T1": "z", "oral|T2": "y", "larynx|T3": "x", "oropharynx|T2": "w"}
    relabelled = st.van_elteren(values, groups, [renamed[s] for s in strata])
    order = _rng(1).permutation(values.size)
    shuffled = st.van_elteren(values[order], groups[order], strata[order])
    for other in (relabelled, shuffled):
        assert other.statistic == pytest.approx(base.statistic, rel=1e-12)
        assert other.p_value == pytest.approx(base.p_value, rel=1e-12)


def test_van_elteren_skips_strata_with_one_group_and_drops_missing():
    values, groups, strata = _two_strata()
    extra = st.van_elteren([*values, 100, 101, math.nan], [*groups, "a", "a", "b"], [*strata, "S3", "S3", "S1"])
    reference = st.van_elteren(values, groups, strata)
    assert extra.statistic == pytest.approx(reference.statistic) and extra.p_value == pytest.approx(reference.p_value)
    assert extra.skipped_strata == ("S3",) and extra.n_dropped == 1


@pytest.mark.parametrize(
    ("values", "groups", "strata", "message"),
    [
        ([], [], [], "values is empty"),
        ([math.nan, math.nan], ["a", "b"], ["s", "s"], "no observed values"),
        ([1.0, 2.0], ["a"], ["s", "s"], "groups has 1 entries"),
        ([1.0, 2.0], ["a", "b"], ["s", None], "strata contains a missing label"),
        ([1.0, 2.0, 3.0], ["a", "b", "c"], ["s"] * 3, "exactly two"),
        ([1.0, 2.0], ["a", "a"], ["s", "s"], "exactly two"),
        ([1.0, 2.0], ["a", "b"], ["s", "t"], "no stratum contains both groups"),
        ([5.0, 5.0, 5.0], ["a", "b", "b"], ["s"] * 3, "tied"),
    ],
)
def test_van_elteren_refuses_bad_input(values, groups, strata, message):
    with pytest.raises(ValueError, match=message):
        st.van_elteren(values, groups, strata)


def test_van_elteren_refuses_unknown_group1():
    with pytest.raises(ValueError, match="group1 'c'"):
        st.van_elteren(*_two_strata(), group1="c")


# --- quadrants ------------------------------------------------------------------------------------------------


def test_quadrants_classifies_with_inclusive_size_and_strict_time_cut_offs():
    saved = [120.0, 30.0, 0.0, -15.0, 60.0, math.nan]
    sizes = [2.0, 9.0, 1.0, 12.0, 5.0, 3.0]
    result = st.quadrants(saved, sizes, size_threshold=5.0)
    assert result.labels == [
        st.TIME_SAVED_SMALL,
        st.TIME_SAVED_LARGE,
        st.NO_TIME_SAVED_SMALL,  # breaking even saves nothing
        st.NO_TIME_SAVED_LARGE,
        st.TIME_SAVED_SMALL,  # a size at the threshold counts as small
        None,
    ]
    assert result.counts == {
        st.TIME_SAVED_SMALL: 2,
        st.TIME_SAVED_LARGE: 1,
        st.NO_TIME_SAVED_SMALL: 1,
        st.NO_TIME_SAVED_LARGE: 1,
    }
    assert result.n_dropped == 1


def test_quadrants_time_threshold_and_empty_quadrants():
    result = st.quadrants([10.0, 40.0], [0.1, 0.2], time_threshold=30.0, size_threshold=0.5)
    assert result.labels == [st.NO_TIME_SAVED_SMALL, st.TIME_SAVED_SMALL]
    assert list(result.counts) == list(st.QUADRANT_LABELS) and result.counts[st.TIME_SAVED_LARGE] == 0


@pytest.mark.parametrize(
    ("saved", "sizes", "kwargs", "message"),
    [
        ([], [], {"size_threshold": 1.0}, "time_saved is empty"),
        ([1.0, 2.0], [1.0], {"size_threshold": 1.0}, "2 entries"),
        ([1.0, math.nan], [math.nan, 1.0], {"size_threshold": 1.0}, "no item has both"),
        ([1.0], [1.0], {"size_threshold": math.nan}, "finite"),
    ],
)
def test_quadrants_refuses_bad_input(saved, sizes, kwargs, message):
    with pytest.raises(ValueError, match=message):
        st.quadrants(saved, sizes, **kwargs)


def test_quadrants_requires_a_size_threshold():
    with pytest.raises(TypeError):
        st.quadrants([1.0], [1.0])


# --- summary --------------------------------------------------------------------------------------------------


def test_summary_hand_computed():
    result = st.summary([4.0, 1.0, math.nan, 3.0, 2.0])
    assert result == {
        "n": 4,
        "n_missing": 1,
        "median": 2.5,
        "q1": 1.75,  # R's default type 7
        "q3": 3.25,
        "min": 1.0,
        "max": 4.0,
        "mean": 2.5,
        "sd": pytest.approx(math.sqrt(5 / 3)),
    }


def test_summary_single_value_has_undefined_sd():
    result = st.summary([42.0])
    assert result["median"] == result["q1"] == result["q3"] == 42.0 and math.isnan(result["sd"])


@pytest.mark.parametrize(("values", "message"), [([], "empty"), ([math.nan, None], "no observed values")])
def test_summary_refuses_nothing(values, message):
    with pytest.raises(ValueError, match=message):
        st.summary(values)
