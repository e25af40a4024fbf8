"""Bang's and James' blinding indices against hand-worked tables, a reference data set and the delta method."""

import math

import pytest

from panel_review.blinding_index import ARMS, Z_95, BangIndex, JamesIndex, bang_index, james_index

CELLS = [(arm, guess) for arm in ARMS for guess in ("ai", "manual", "dont_know")]


def answers(table: dict[tuple[str, str], int]) -> list[tuple[str, str]]:
    """Expand {(true_arm, guess): count} into the (true_arm, guess) pairs the panel produces."""
    return [cell for cell, count in table.items() for _ in range(count)]


def approx(value, abs_tol=1e-12):
    return pytest.approx(value, abs=abs_tol)


def test_all_correct_is_complete_unblinding():
    result = bang_index(answers({("ai", "ai"): 3, ("manual", "manual"): 2}))
    assert result["ai"] == BangIndex(3, 3, 0, 0, 1.0, 0.0, 1.0, 1.0)
    assert result["manual"] == BangIndex(2, 2, 0, 0, 1.0, 0.0, 1.0, 1.0)
    # P_o = 0 while P_e = 1/2 (0.6*0.4 + 0.4*0.6) = 0.24 > 0, so k_d = -1 and BI = (1 + 0 - 1) / 2 = 0.
    james = james_index(answers({("ai", "ai"): 3, ("manual", "manual"): 2}))
    assert (james.n, james.index, james.se) == (5, approx(0.0), approx(0.0))


def test_all_dont_know_is_complete_blinding():
    table = {("ai", "dont_know"): 4, ("manual", "dont_know"): 3}
    result = bang_index(answers(table))
    assert result["ai"] == BangIndex(4, 0, 0, 4, 0.0, 0.0, 0.0, 0.0)
    assert result["manual"] == BangIndex(3, 0, 0, 3, 0.0, 0.0, 0.0, 0.0)
    assert james_index(answers(table)) == JamesIndex(7, 1.0, 0.0, 1.0, 1.0)
    # P_DK = 1 forces BI = 1 even when only one arm answered.
    assert james_index([("ai", "dont_know")] * 2) == JamesIndex(2, 1.0, 0.0, 1.0, 1.0)


def test_all_wrong_is_opposite_guessing():
    table = {("ai", "manual"): 4, ("manual", "ai"): 4}
    result = bang_index(answers(table))
    assert result["ai"] == BangIndex(4, 0, 4, 0, -1.0, 0.0, -1.0, -1.0)
    assert result["manual"] == BangIndex(4, 0, 4, 0, -1.0, 0.0, -1.0, -1.0)
    # James cannot tell opposite guessing from blinding: P_o = 1/2 * 1 = 0.5, P_e = 1/2 (0.5*0.5 + 0.5*0.5) = 0.25,
    # k_d = 1, BI = (1 + 0 + 1) / 2 = 1; V1 = 1, V2 = -1 so the SE is 0.
    james = james_index(answers(table))
    assert (james.index, james.se) == (approx(1.0), approx(0.0, 1e-7))


def test_balanced_random_guessing():
    # Each arm: 5 correct, 5 wrong, n = 10.
    table = {("ai", "ai"): 5, ("ai", "manual"): 5, ("manual", "manual"): 5, ("manual", "ai"): 5}
    result = bang_index(answers(table))
    # Bang: (5 - 5) / 10 = 0; Var = (0.5*0.5 + 0.5*0.5 + 2*0.5*0.5) / 10 = 0.1.
    for arm in ARMS:
        assert result[arm].index == approx(0.0)
        assert result[arm].se == approx(math.sqrt(0.1))
        assert result[arm].ci_low == approx(-Z_95 * math.sqrt(0.1))
    # James, n = 20, every cell p = 1/4, margins 1/2: P_o = 1/2 * (1/4 + 1/4) = 1/4, P_e = 1/2 * (1/4 + 1/4) = 1/4,
    # k_d = 0, BI = 1/2. V1: the two correct cells give 1/4 * (0 - 1 * 1/2)^2 = 1/16 each and the wrong cells
    # (1/2 - 1/2)^2 = 0, over 4 * (1/4)^2 = 1/4, so V1 = 1/2; V2 = -1/4; Var = 1/4 / 20 -> SE = 0.5 / sqrt(20).
    james = james_index(answers(table))
    assert james.index == approx(0.5)
    assert james.se == approx(0.5 / math.sqrt(20))
    assert (james.ci_low, james.ci_high) == (approx(0.5 - Z_95 * james.se), approx(0.5 + Z_95 * james.se))


MIXED = {
    ("ai", "ai"): 6,
    ("ai", "manual"): 2,
    ("ai", "dont_know"): 2,
    ("manual", "ai"): 3,
    ("manual", "manual"): 3,
    ("manual", "dont_know"): 4,
}


def test_mixed_counts_worked_by_hand():
    result = bang_index(iter(answers(MIXED)))  # a one-shot iterator must do
    # ai: c = 6, i = 2, DK = 2, n = 10 -> BI = (2 * 6/8 - 1) * 8/10 = 0.5 * 0.8 = 0.4 = (6 - 2) / 10;
    # p_c = 0.6, p_i = 0.2: Var = (0.6*0.4 + 0.2*0.8 + 2*0.6*0.2) / 10 = (0.24 + 0.16 + 0.24) / 10 = 0.064.
    ai = result["ai"]
    assert (ai.n, ai.correct, ai.incorrect, ai.dont_know) == (10, 6, 2, 2)
    assert (ai.index, ai.se) == (approx(0.4), approx(math.sqrt(0.064)))
    assert (ai.ci_low, ai.ci_high) == (approx(0.4 - 1.959964 * 0.252982, 1e-5), approx(0.895836, 1e-5))
    # manual: c = 3, i = 3, DK = 4 -> BI = 0; Var = (0.3*0.7 + 0.3*0.7 + 2*0.3*0.3) / 10 = 0.06.
    manual = result["manual"]
    assert (manual.n, manual.correct, manual.incorrect, manual.dont_know) == (10, 3, 3, 4)
    assert (manual.index, manual.se) == (approx(0.0), approx(math.sqrt(0.06)))

    # James: n = 20, DK = 6 -> P_DK = 0.3. Non-DK (14 answers): guessed ai 6 + 3 = 9, guessed manual 2 + 3 = 5;
    # true ai 6 + 2 = 8, true manual 3 + 3 = 6; wrong 2 + 3 = 5. Weights cancel in the ratio, so
    # P_o / P_e = (5/14) / ((9*6 + 5*8) / 14^2) = 70 / 94 = 35/47, k_d = -12/47,
    # BI = (1 + 0.3 + 0.7 * -12/47) / 2 = (61.1 - 8.4) / 94 = 52.7 / 94 = 0.5606383.
    james = james_index(answers(MIXED))
    assert james.n == 20
    assert james.index == approx(52.7 / 94)


def test_reference_data_houweling_2014_investigators():
    """Houweling et al. 2014 (Clinical Trials 11:547) table 2, investigators, as used in the R BI package examples.

    Expected values (3 dp) are the R BI / BlindingIndex.jl outputs for this table; Bang's estimates are also
    44/382 and 8/371 by hand.
    """
    table = {
        ("ai", "ai"): 48,
        ("ai", "manual"): 4,
        ("ai", "dont_know"): 330,
        ("manual", "ai"): 22,
        ("manual", "manual"): 30,
        ("manual", "dont_know"): 319,
    }
    james = james_index(answers(table))
    rounded = (james.index, james.se, james.ci_low, james.ci_high)
    assert tuple(round(v, 3) for v in rounded) == (0.896, 0.011, 0.875, 0.918)
    bang = bang_index(answers(table))
    assert bang["ai"].index == approx(44 / 382)
    ai = (bang["ai"].index, bang["ai"].se, bang["ai"].ci_low, bang["ai"].ci_high)
    manual = (bang["manual"].index, bang["manual"].se, bang["manual"].ci_low, bang["manual"].ci_high)
    assert tuple(round(v, 3) for v in ai) == (0.115, 0.018, 0.08, 0.15)
    assert tuple(round(v, 3) for v in manual) == (0.022, 0.019, -0.016, 0.06)


def _james_from_proportions(p: dict[tuple[str, str], float]) -> float:
    """The point estimate straight from James' formula, written out independently for the delta-method check."""
    p_dk = p["ai", "dont_know"] + p["manual", "dont_know"]
    pairs = [(arm, guess) for arm in ARMS for guess in ARMS]
    guessed = {g: sum(p[arm, g] for arm in ARMS) for g in ARMS}
    true = {arm: sum(p[arm, g] for g in ARMS) for arm in ARMS}
    p_o = sum(p[arm, g] for arm, g in pairs if arm != g) / (1 - p_dk)
    p_e = sum(guessed[g] * true[arm] for arm, g in pairs if arm != g) / (1 - p_dk) ** 2
    return (1 + p_dk + (1 - p_dk) * (p_o - p_e) / p_e) / 2


@pytest.mark.parametrize(
    "counts",
    [
        (6, 2, 2, 3, 3, 4),
        (48, 4, 330, 22, 30, 319),
        (7, 1, 0, 2, 5, 5),
        (1, 9, 3, 2, 2, 0),
    ],
)
def test_james_se_is_the_multinomial_delta_method_variance(counts):
    """James' closed-form variance must equal grad' (diag(p) - p p') grad / n for the six cell proportions."""
    table = dict(zip(CELLS, counts, strict=True))
    n = sum(counts)
    p = {cell: count / n for cell, count in table.items()}
    h = 1e-6
    grad = {}
    for cell in CELLS:
        up, down = dict(p), dict(p)
        up[cell] += h
        down[cell] -= h
        grad[cell] = (_james_from_proportions(up) - _james_from_proportions(down)) / (2 * h)
    mean_grad = sum(p[c] * grad[c] for c in CELLS)
    variance = sum(p[c] * (grad[c] - mean_grad) ** 2 for c in CELLS) / n
    james = james_index(answers(table))
    assert james.index == approx(_james_from_proportions(p))
    assert james.se == pytest.approx(math.sqrt(variance), rel=1e-6)


def test_empty_input_is_undefined_not_zero():
    assert bang_index([]) == {
        "ai": BangIndex(0, 0, 0, 0, None, None, None, None),
        "manual": BangIndex(0, 0, 0, 0, None, None, None, None),
    }
    assert james_index([]) == JamesIndex(0, None, None, None, None)


def test_single_arm_all_guessed_same_leaves_james_undefined():
    # Only ai cases, all guessed ai: P_e = 1/2 (p_ai. * p'_.manual + p_manual. * p'_.ai) = 1/2 (1*0 + 0*1) = 0.
    result = bang_index([("ai", "ai")] * 3)
    assert result["ai"].index == 1.0
    assert result["manual"] == BangIndex(0, 0, 0, 0, None, None, None, None)
    assert james_index([("ai", "ai")] * 3) == JamesIndex(3, None, None, None, None)


@pytest.mark.parametrize("index_function", [bang_index, james_index])
@pytest.mark.parametrize(
    ("pair", "named"),
    [(("placebo", "ai"), "'placebo'"), (("ai", "maybe"), "'maybe'"), (("AI", "ai"), "'AI'"), (("ai", ""), "''")],
)
def test_unknown_values_are_refused_by_name(index_function, pair, named):
    with pytest.raises(ValueError, match=named):
        index_function([("ai", "ai"), pair])
