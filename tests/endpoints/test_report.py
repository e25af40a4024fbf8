"""The analysis report from a small real trial: every figure is a real picture, the PDF prints, and before the
lock nothing in it names the real arms; the statistics on a made-up dataset match the statistics module."""

import base64
import io
import math
import re

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from endpoints import plots, report, services, statistics
from tests.conftest import PASSWORD
from trial.models import AuditEntry

pytestmark = pytest.mark.django_db

SECTIONS = ["CONSORT flow", "Descriptive statistics by arm", "Delineation time by arm", "Correction size by arm",
            "Time used against size of corrections", "Primary endpoint: Hodges–Lehmann and Mann–Whitney",
            "Stratified analysis (van Elteren)", "Blinding indices"]  # fmt: skip
DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


def assert_real_picture(png: bytes) -> None:
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG" and image.width >= 300 and image.height >= 250
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20  # lines, text and fills, not a blank canvas


def run_report(world, out):
    call_command("analysis_report", "--out", str(out), "--user", world.statistician.username)
    html = (out / "report.html").read_text(encoding="utf-8")
    return html, DATA_URI.findall(html)


def test_blinded_report_has_every_figure_and_no_arm_names(trial_data, tmp_path):
    world, _cases, _waiting = trial_data
    html, images = run_report(world, tmp_path / "out")
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in html, heading
    assert len(images) == 5
    for encoded in images:
        assert_real_picture(base64.b64decode(encoded))
    for name in ("consort", "delineation_time", "correction_size", "outcome_2x2", "blinding"):
        assert_real_picture((tmp_path / "out" / f"{name}.png").read_bytes())
    pdf = (tmp_path / "out" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and (pdf.count(b"/Type /Page\n") + pdf.count(b"/Type/Page") > 1 or len(pdf) > 10_000)
    text = DATA_URI.sub("", html)
    assert "<td>A</td>" in text and "<td>B</td>" in text and "Blinded" in text
    for revealing in ("ai-assisted", "manual", "'ai'", "dont_know"):
        assert revealing not in text.lower(), revealing
    assert "not estimable" in text  # one analysed patient per arm: no shift, no test, and no crash
    entry = AuditEntry.objects.get(action="analysis_report")
    assert entry.actor_username == world.statistician.username and not entry.reveals_allocation


def test_only_statisticians_and_data_managers_get_the_report(trial_data, tmp_path):
    world, _cases, _waiting = trial_data
    with pytest.raises(CommandError, match="statistician"):
        call_command("analysis_report", "--out", str(tmp_path), "--user", world.physician.username)
    assert not (tmp_path / "report.html").exists()


def test_after_unblinding_the_report_names_the_arms(trial_data, tmp_path):
    world, _cases, _waiting = trial_data
    services.lock(actor=world.data_manager, trial=world.trial, password=PASSWORD)
    services.unblind(actor=world.data_manager, trial=world.trial, password=PASSWORD, reason="final analysis")
    html, images = run_report(world, tmp_path)
    text = DATA_URI.sub("", html)
    assert "<td>AI-assisted</td>" in text and "<td>Manual</td>" in text and "<td>A</td>" not in text
    assert len(images) == 5 and AuditEntry.objects.get(action="analysis_report").reveals_allocation


def test_statistics_of_a_made_up_dataset():
    rng = np.random.default_rng(3)
    arms = ["A"] * 12 + ["B"] * 10
    frame = pd.DataFrame({"allocation": arms, "delin_active_s": rng.normal(600, 90, 22).round(1),
                          "sa_apl_1mm": rng.gamma(2, 40, 22).round(1), "site": ["S1", "S2"] * 11,
                          "stratum_t": ["T1"] * 11 + ["T2"] * 11})  # fmt: skip
    frame.loc[3, "delin_active_s"] = math.nan
    names = report.arm_names(unblinded=False)
    columns, strata = report.strata_labels(frame, [{"name": "site"}, {"name": "t"}])
    assert columns == ["site", "stratum_t"] and strata[0] == "S1/T1"
    result = report.compare(frame, names, strata)
    a = frame.delin_active_s[frame.allocation == "A"]
    b = frame.delin_active_s[frame.allocation == "B"]
    assert result["order"] == "A − B"
    assert result["hl"] == statistics.hodges_lehmann(a, b) and result["hl"].n_x == 11
    assert result["mw"] == statistics.mann_whitney(a, b)
    assert result["ve"] == statistics.van_elteren(frame.delin_active_s, arms, strata, group1="A")
    quadrant = report.outcome_quadrants(frame, names)
    assert sum(sum(c.values()) for c in quadrant["counts"].values()) == 21
    assert quadrant["time_threshold"] == pytest.approx(frame.delin_active_s.dropna().median())
    few = frame.iloc[[0, 12]]
    assert report.compare(few, names, ["x", "x"])["hl"] is None


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plots.consort({"enrolled": 5, "not_randomised": 1, "randomised": 4,
                               "arms": {"A": {"allocated": 2, "submitted": 2, "approved": 1, "analysed": 1},
                                        "B": {"allocated": 2, "submitted": 1, "approved": 1, "analysed": 1}}}),
        lambda: plots.by_arm_box({"A": [1.0, 2.0, 5.0], "B": [math.nan]}, "Time", "s"),
        lambda: plots.by_arm_box({"A": [], "B": []}, "Time", "s"),
        lambda: plots.outcome_2x2([1.0, 3.0, 2.0], [5.0, 1.0, math.nan], ["A", "B", "A"], 2.0, 3.0),
        lambda: plots.outcome_2x2([], [], [], 0.0, 0.0),
        lambda: plots.bang_bars({"A": (0.2, -0.1, 0.5), "B": (None, None, None)}),
    ],
)  # fmt: skip
def test_every_plot_is_a_png(draw):
    assert_real_picture(draw())
