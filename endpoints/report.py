"""The statisticians' analysis report: one self-contained HTML file (figures inlined), the figures as PNG, a PDF.

Everything is read from ``services.endpoint_frame`` so the report shows exactly what the export would (the
frame sealed at the database lock once there is one); while the trial is blinded the arms are the codes A/B and
nothing in the report names the real arms (the panel's guesses are shown only as correct / incorrect / don't know
per coded arm, since the guess labels themselves name the arms). Statistics that need two observations per arm
say "not estimable" rather than fail, so the report can be run from the first patient on.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from django.template.loader import render_to_string
from django.utils import timezone

from panel_review.indices import blinding_indices
from trial.audit.recorder import record
from trial.models import Patient, Trial
from trial.randomisation.design import ARM_LABELS

from . import dataset, plots, services, statistics

CHROMIUM = "/usr/bin/chromium"
PDF_TIMEOUT_S = 120
DESCRIBED = [  # (column, label, unit)
    ("delin_active_s", "Delineation active time (primary endpoint)", "s"),
    ("delin_wall_s", "Delineation wall time", "s"),
    ("delin_editing_s", "Delineation editing time", "s"),
    ("sa_apl_1mm", "Correction size: added path length at 1 mm", "mm"),
    ("sa_sdsc_2mm", "Surface Dice at 2 mm, submitted vs approved", ""),
    ("sa_dice", "Volumetric Dice, submitted vs approved", ""),
]
NOT_ESTIMABLE = "not estimable"


def arm_names(unblinded: bool) -> dict[str, str]:
    """Allocation code → label shown, in the order the difference is taken (first minus second)."""
    return dict(ARM_LABELS) if unblinded else {"A": "A", "B": "B"}


def _values(frame: pd.DataFrame, column: str, arm: str) -> np.ndarray:
    return pd.to_numeric(frame.loc[frame.allocation == arm, column], errors="coerce").to_numpy(dtype=float)


def _observed(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)]


def _estimable(*samples: np.ndarray) -> bool:
    return all(_observed(s).size >= 2 for s in samples)


def describe(frame: pd.DataFrame, arms: dict[str, str]) -> list[dict]:
    """Summary per endpoint and arm; None where an arm has no observed value."""
    rows = []
    for column, label, unit in DESCRIBED:
        if column not in frame.columns:
            continue
        per_arm = {}
        for code, name in arms.items():
            values = _values(frame, column, code)
            per_arm[name] = statistics.summary(values) if _observed(values).size else None
        rows.append({"label": label, "unit": unit, "arms": per_arm})
    return rows


def strata_labels(frame: pd.DataFrame, trial_factors: list[dict]) -> tuple[list[str], list[str]]:
    """The combined stratum of each row (every stratification factor, site included where it is one)."""
    columns = [c for c in frame.columns if c.startswith("stratum_")]
    if any(factor["name"] == "site" for factor in trial_factors):
        columns = ["site", *columns]
    labels = ["/".join("missing" if pd.isna(row[c]) else str(row[c]) for c in columns) or "all"
              for _, row in frame.iterrows()]  # fmt: skip
    return columns, labels


def compare(frame: pd.DataFrame, arms: dict[str, str], strata: list[str]) -> dict:
    """HL shift (first arm − second) with its 95% CI, Mann-Whitney and van Elteren on the primary endpoint."""
    (code_1, name_1), (code_2, name_2) = list(arms.items())
    x, y = _values(frame, "delin_active_s", code_1), _values(frame, "delin_active_s", code_2)
    result = {"order": f"{name_1} − {name_2}", "hl": None, "mw": None, "ve": None, "reason": ""}
    if not _estimable(x, y):
        result["reason"] = "each arm needs at least two observed delineation times"
        return result
    result["hl"] = statistics.hodges_lehmann(x, y)
    result["mw"] = statistics.mann_whitney(x, y)
    values = pd.to_numeric(frame.delin_active_s, errors="coerce").to_numpy(dtype=float)
    groups = [arms.get(a, str(a)) for a in frame.allocation]
    try:
        result["ve"] = statistics.van_elteren(values, groups, strata, group1=name_1)
    except ValueError as exc:
        result["ve_reason"] = str(exc)
    return result


def outcome_quadrants(frame: pd.DataFrame, arms: dict[str, str]) -> dict:
    """Each patient's active time against correction size, cut at the pooled medians, counted per arm.

    Below the pooled median time counts as "time saved", at or above it as not; a correction size at or below
    the pooled median as small. The cut-offs are descriptive (where this patient lies relative to the others),
    not a per-patient saving, which would need a counterfactual the trial does not have.
    """
    time = pd.to_numeric(frame.delin_active_s, errors="coerce").to_numpy(dtype=float)
    size = pd.to_numeric(frame.sa_apl_1mm, errors="coerce").to_numpy(dtype=float)
    both = ~np.isnan(time) & ~np.isnan(size)
    result = {"time": list(time), "size": list(size), "arms": [arms.get(a, str(a)) for a in frame.allocation]}
    if not both.any():
        return {**result, "time_threshold": 0.0, "size_threshold": 0.0, "counts": None}
    time_threshold, size_threshold = float(np.median(time[both])), float(np.median(size[both]))
    labels = statistics.quadrants(-time, size, time_threshold=-time_threshold, size_threshold=size_threshold).labels
    counts = {name: dict.fromkeys(statistics.QUADRANT_LABELS, 0) for name in arms.values()}
    for arm, label in zip(result["arms"], labels, strict=True):
        if label is not None and arm in counts:
            counts[arm][label] += 1
    return {**result, "time_threshold": time_threshold, "size_threshold": size_threshold, "counts": counts}


def blinding(trial: Trial, unblinded: bool) -> dict:
    """Bang's index per arm (under the arm's code while blinded) and James' index; guesses only as correctness."""
    indices = blinding_indices(trial)
    coding = dataset.arm_coding(trial)
    name_of = ARM_LABELS.get if unblinded else coding.code_of
    bang = {name_of(arm): index for arm, index in indices["bang"].items()}
    return {"answers": indices["answers"], "bang": dict(sorted(bang.items())), "james": indices["james"]}


def consort_counts(trial: Trial, frame: pd.DataFrame, arms: dict[str, str]) -> dict:
    enrolled = Patient.objects.filter(trial=trial).count()
    per_arm = {}
    for code, name in arms.items():
        mine = frame[frame.allocation == code]
        analysed = pd.to_numeric(mine.delin_active_s, errors="coerce").notna()
        per_arm[name] = {"allocated": len(mine), "submitted": int(mine.submitted_at.notna().sum()),
                         "approved": int(mine.approved_at.notna().sum()), "analysed": int(analysed.sum())}  # fmt: skip
    return {"enrolled": enrolled, "randomised": len(frame), "not_randomised": enrolled - len(frame), "arms": per_arm}


def figures(frame: pd.DataFrame, arms: dict[str, str], counts: dict, quadrant: dict, blind: dict) -> dict:
    """Name → PNG bytes of every figure of the report, in the order shown."""
    by_arm = {column: {name: list(_values(frame, column, code)) for code, name in arms.items()}
              for column in ("delin_active_s", "sa_apl_1mm")}  # fmt: skip
    bang = {arm: (i.index, i.ci_low, i.ci_high) for arm, i in blind["bang"].items()}
    return {
        "consort": plots.consort(counts),
        "delineation_time": plots.by_arm_box(by_arm["delin_active_s"], "Delineation active time", "s"),
        "correction_size": plots.by_arm_box(by_arm["sa_apl_1mm"], "Correction size (added path length, 1 mm)", "mm"),
        "outcome_2x2": plots.outcome_2x2(
            quadrant["time"], quadrant["size"], quadrant["arms"], quadrant["time_threshold"], quadrant["size_threshold"]
        ),
        "blinding": plots.bang_bars(bang),
    }


def to_pdf(html: Path, pdf: Path) -> Path:
    """Print the HTML with headless Chromium, which renders the inlined figures exactly as a browser does."""
    browser = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if browser is None:
        raise RuntimeError(f"Chromium is needed for the PDF and was not found at {CHROMIUM} or on PATH.")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                        f"--user-data-dir={profile}", f"--print-to-pdf={pdf}", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=PDF_TIMEOUT_S)  # fmt: skip
    if not pdf.exists() or pdf.read_bytes()[:4] != b"%PDF":
        raise RuntimeError(f"Chromium did not write a PDF to {pdf}.")
    return pdf


def build_report(trial: Trial, out_dir: Path) -> Path:
    """Write report.html, report.pdf and one PNG per figure into ``out_dir``; returns the HTML's path.

    Everything is made in a temporary folder beside ``out_dir`` and moved into place only once the PDF exists,
    so a failure leaves ``out_dir`` as it was."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-", dir=out_dir.parent) as folder:
        _write_report(trial, Path(folder))
        out_dir.mkdir(exist_ok=True)
        for made in sorted(Path(folder).iterdir()):
            os.replace(made, out_dir / made.name)
    return out_dir / "report.html"


def _write_report(trial: Trial, out_dir: Path) -> None:
    unblinded = services.is_unblinded(trial)
    frame, _book = services.endpoint_frame(trial, unblinded=unblinded)
    arms = arm_names(unblinded)
    _columns, strata = strata_labels(frame, trial.strata_factors)
    counts = consort_counts(trial, frame, arms)
    quadrant = outcome_quadrants(frame, arms)
    blind = blinding(trial, unblinded)
    images = figures(frame, arms, counts, quadrant, blind)
    for name, png in images.items():
        (out_dir / f"{name}.png").write_bytes(png)
    context = {
        "trial": trial,
        "unblinded": unblinded,
        "generated_at": timezone.now(),
        "arms": list(arms.values()),
        "strata_columns": _columns,
        "counts": counts,
        "described": describe(frame, arms),
        "comparison": compare(frame, arms, strata),
        "quadrant": quadrant,
        "blind": blind,
        "images": {name: base64.b64encode(png).decode("ascii") for name, png in images.items()},
        "not_estimable": NOT_ESTIMABLE,
    }
    html = out_dir / "report.html"
    html.write_text(render_to_string("endpoints/report.html", context), encoding="utf-8")
    to_pdf(html, out_dir / "report.pdf")


def generate(*, actor, trial: Trial, out_dir: Path) -> Path:
    """The audited entry point: statisticians and data managers only, like every export of endpoint data."""
    services.require_reader(actor, "make the analysis report")
    html = build_report(trial, out_dir)
    unblinded = services.is_unblinded(trial)
    record(action="analysis_report", model="trial.trial", object_pk=trial.pk, object_repr=str(trial),
           changes={"out": [None, str(out_dir)], "unblinded": [None, unblinded]},
           actor=actor, reveals_allocation=unblinded)  # fmt: skip
    return html
