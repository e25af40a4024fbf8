"""Endpoint-dataset export benchmark: 10,000 synthetic patients in every format, next to plain pandas writers.

The frame is shaped like the endpoint dataset (ids, site, two strata, allocation, dates, physician, model version,
8 timestamps, 4 durations, 13 correction metrics × 3 comparisons, volumes, inference time, deviation and
missing-data reasons, blinding guess: 70 columns, about 10 % missing). For each format: `formats.write` (codebook
check, conversions, labels, temporary file, fsync, rename) and `formats.read` (back to logical values), median of
BENCH_REPEATS (5); the file size. References in the same run, on the same frame without codebook or atomicity:
pandas `to_csv` (the issue's reference), `to_parquet`, and `to_excel` (openpyxl; tz removed beforehand).

Run: `.venv/bin/python bench/export_bench.py [--rows 10000]`. Prints and writes var/bench/export.json. No Django.
"""

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from endpoints import formats  # noqa: E402
from endpoints.codebook import Codebook, Variable  # noqa: E402

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
OUT = ROOT / "var" / "bench" / "export.json"
SITES = {"aar": "Aarhus", "ode": "Odense", "cph": "Copenhagen", "aal": "Aalborg"}
TUMOUR = {"oropharynx": "Oropharynx", "larynx": "Larynx", "hypopharynx": "Hypopharynx", "oral": "Oral cavity"}
TIMESTAMPS = ["enrolled", "randomised", "images_ready", "ai_ready", "session_started", "submitted", "review_started",
              "approved"]  # fmt: skip
METRICS = [("dice", ""), ("sdice_1mm", ""), ("sdice_2mm", ""), ("sdice_3mm", ""), ("hd95", "mm"), ("hausdorff", "mm"),
           ("msd_fwd", "mm"), ("msd_bwd", "mm"), ("apl_0mm", "mm"), ("apl_1mm", "mm"), ("added", "cm³"),
           ("removed", "cm³"), ("edited_slices", "")]  # fmt: skip
COMPARISONS = {"sa": "submitted vs approved", "as": "AI vs submitted", "aa": "AI vs approved"}
GUESS = {"ai": "AI-assisted", "manual": "Manual", "dont_know": "Don't know"}


def endpoint_codebook() -> Codebook:
    """A codebook shaped like the endpoint dataset's (names and kinds; definitions abbreviated)."""
    v = Variable
    variables = [
        v("trial_id", "Trial patient identifier", "string", source="trial.Patient"),
        v("site", "Site", "category", value_labels=SITES, source="trial.Site"),
        v("stratum_tumour", "Stratum: tumour site", "category", value_labels=TUMOUR, source="trial.Patient"),
        v("stratum_stage", "Stratum: T stage", "category", value_labels={"t12": "T1-2", "t34": "T3-4"}),
        v("allocation", "Allocation (blinded)", "category", value_labels={"A": "Arm A", "B": "Arm B"}),
        v("randomised_on", "Randomisation date", "date", source="trial.Allocation"),
        v("physician", "Physician pseudonym", "string", source="trial.SiteMembership"),
        v("physician_years", "Physician experience", "integer", unit="years"),
        v("physician_senior", "Physician seniority", "category", value_labels={1: "< 5 years", 2: "≥ 5 years"}),
        v("model_version", "AI model version (AI arm)", "string", source="inference.Proposal"),
    ]
    variables += [
        v(f"{name}_at", f"Time {name.replace('_', ' ')} (UTC)", "datetime", unit="UTC") for name in TIMESTAMPS
    ]
    variables += [
        v("wall_time_s", "Delineation wall time", "float", unit="s"),
        v("active_time_s", "Delineation active time", "float", unit="s"),
        v("editing_time_s", "Delineation editing time", "float", unit="s"),
        v("review_time_s", "Panel review time", "float", unit="s"),
    ]
    for key, comparison in COMPARISONS.items():
        for metric, unit in METRICS:
            kind = "integer" if metric == "edited_slices" else "float"
            variables.append(v(f"{metric}_{key}", f"{metric} ({comparison})", kind, unit=unit, source="metrics"))
    variables += [
        v("volume_ai", "GTV volume, AI proposal", "float", unit="cm³"),
        v("volume_submitted", "GTV volume, submitted", "float", unit="cm³"),
        v("volume_approved", "GTV volume, approved", "float", unit="cm³"),
        v("inference_time_s", "AI inference time", "float", unit="s"),
        v("deviation", "Protocol deviations", "string"),
        v("missing_reason", "Reason for missing endpoint data", "string"),
        v("blinding_guess", "Panel's blinding guess", "category", value_labels=GUESS),
    ]
    return Codebook(variables, title="ContourTrial endpoint dataset (synthetic benchmark)")


def synthetic_frame(codebook: Codebook, rows: int, seed: int = 1) -> pd.DataFrame:
    """Random values of each variable's kind, about 10 % missing outside the id and allocation."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-01-01T08:00:00", "us")
    columns = {}
    for variable in codebook:
        if variable.name == "trial_id":
            values = pd.Series([f"HN-{i:05d}" for i in range(rows)], dtype="str")
        elif variable.kind == "category":
            values = pd.Series(rng.choice(np.array(list(variable.value_labels), dtype=object), rows))
        elif variable.kind == "string":
            words = np.array(["Ærø", "late upload", "PET missing; re-scan", "dr-0042", "v2.3.1", "Zürich, Nord"])
            values = pd.Series(rng.choice(words, rows), dtype="str")
        elif variable.kind == "integer":
            values = pd.Series(rng.integers(0, 40, rows), dtype="Int64")
        elif variable.kind == "float":
            values = pd.Series(rng.lognormal(2, 1, rows))
        elif variable.kind == "date":
            values = pd.Series([dt.date(2026, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 700, rows)])
        else:
            offsets = rng.integers(0, 700 * 86_400 * 10**6, rows).astype("timedelta64[us]")
            values = pd.Series(start + offsets).dt.tz_localize("UTC")
        if variable.name not in ("trial_id", "allocation"):
            values = values.mask(rng.random(rows) < 0.1)
            if variable.kind == "date":
                values = values.astype(object).where(values.notna(), None)
        columns[variable.name] = values
    return pd.DataFrame(columns)


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    codebook = endpoint_codebook()
    frame = synthetic_frame(codebook, args.rows)
    naive = frame.copy()
    for variable in codebook:
        if variable.kind == "datetime":
            naive[variable.name] = naive[variable.name].dt.tz_localize(None)
    results = {"rows": len(frame), "columns": len(frame.columns), "repeats": REPEATS, "formats": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["conform_s"] = timed(lambda: codebook.conform(frame), REPEATS)
        for fmt in formats.FORMATS:
            path = work / f"endpoints.{fmt}"
            write_s = timed(lambda fmt=fmt, path=path: formats.write(frame, codebook, fmt, path), REPEATS)
            read_s = timed(lambda fmt=fmt, path=path: formats.read(fmt, path, codebook), REPEATS)
            back = formats.read(fmt, path, codebook)
            assert back.shape == frame.shape and back["trial_id"].equals(codebook.conform(frame)["trial_id"])
            results["formats"][fmt] = {"write_s": write_s, "read_s": read_s, "bytes": path.stat().st_size}
            print(
                f"{fmt:8} write {write_s:7.3f} s  read {read_s:7.3f} s  {path.stat().st_size / 1e6:6.2f} MB", flush=True
            )
        references = {
            "pandas_to_csv": (lambda: frame.to_csv(work / "plain.csv", index=False), "plain.csv"),
            "pandas_to_parquet": (lambda: frame.to_parquet(work / "plain.parquet", index=False), "plain.parquet"),
            "pandas_to_excel": (lambda: naive.to_excel(work / "plain.xlsx", index=False), "plain.xlsx"),
        }
        results["references"] = {}
        for name, (function, file) in references.items():
            seconds = timed(function, REPEATS)
            results["references"][name] = {"write_s": seconds, "bytes": (work / file).stat().st_size}
            print(f"{name:18} write {seconds:7.3f} s  {(work / file).stat().st_size / 1e6:6.2f} MB", flush=True)
    results["environment"] = {
        "python": platform.python_version(), "pandas": pd.__version__, "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(), "utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
