"""Acceptance: the statistician's simulation over 200 patients × 1000 runs, through the command."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def _simulate(method: str, patients: int, runs: int, *extra) -> dict:
    out = StringIO()
    call_command("simulate_randomisation", "--method", method, "--patients", str(patients), "--runs", str(runs),
                 "--seed", "2026", "--json", *extra, stdout=out)  # fmt: skip
    return json.loads(out.getvalue())


@pytest.mark.slow
def test_blocks_bound_within_stratum_imbalance_and_minimisation_balances_overall_better():
    blocks = _simulate("blocks", 200, 1000)
    minimisation = _simulate("minimisation", 200, 1000)
    for result, method in ((blocks, "blocks"), (minimisation, "minimisation")):
        assert result["method"] == method and result["patients"] == 200 and result["runs"] == 1000
        assert set(result["marginal_imbalance"]) == {"site", "subsite", "t_stage"}
        assert 0.5 <= result["correct_guess_rate"] <= 1.0
    assert blocks["within_stratum_imbalance"]["max"] <= 3
    assert minimisation["overall_imbalance"]["mean"] < blocks["overall_imbalance"]["mean"]


def test_the_same_seed_gives_the_same_result_and_another_seed_another():
    first = _simulate("minimisation", 30, 20)
    assert first == _simulate("minimisation", 30, 20)
    out = StringIO()
    call_command("simulate_randomisation", "--method", "minimisation", "--patients", "30", "--runs", "20",
                 "--seed", "7", "--json", stdout=out)  # fmt: skip
    assert json.loads(out.getvalue()) != first


def test_bad_designs_are_refused_with_the_reason():
    with pytest.raises(CommandError, match="multiples of 2"):
        _simulate("blocks", 10, 2, "--block-sizes", "3,5")
    with pytest.raises(CommandError, match="at least 1"):
        _simulate("blocks", 0, 2)
