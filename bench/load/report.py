"""Figures of a load run: per endpoint name count, p50/p95/p99/max and errors (exact nearest-rank percentiles of
every response time locust measured), the autosave verdict, the server logs' errors, and the markdown table."""

import math
import re
from collections import defaultdict
from pathlib import Path

AUTOSAVES = ("physician: autosave", "panel: autosave")
ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) \S+ (?P<ms>\d+)$')
AUTOSAVE_PATH = re.compile(r"^/api/v1/(delineation|review)/cases/[^/]+/versions/$")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q % of the values at or below it."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


def endpoint_rows(samples, since_s: float = 0.0) -> list[dict]:
    times, errors = defaultdict(list), defaultdict(int)
    for name, t, ms, ok in samples:
        if t < since_s:
            continue
        times[name].append(ms)
        errors[name] += 0 if ok else 1
    rows = []
    for name in sorted(times):
        values = sorted(times[name])
        rows.append({
            "endpoint": name, "count": len(values), "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
            "p99_ms": percentile(values, 99), "max_ms": values[-1], "errors": errors[name],
        })  # fmt: skip
    return rows


def server_side(run_dir: Path) -> dict:
    """gunicorn's own view: autosave time inside the worker (access log %(M)s), 5xx answers, logged errors."""
    autosave_ms, statuses = [], defaultdict(int)
    access = run_dir / "access.log"
    for line in access.read_text().splitlines() if access.exists() else []:
        match = ACCESS_LINE.search(line)
        if not match:
            continue
        statuses[match["status"][0] + "xx"] += 1
        if match["method"] == "POST" and AUTOSAVE_PATH.match(match["path"].split("?")[0]):
            autosave_ms.append(float(match["ms"]))
    autosave_ms.sort()
    logged = {}
    for name in ("gunicorn.log", "celery.log"):
        path = run_dir / name
        text = path.read_text(errors="replace") if path.exists() else ""
        logged[name] = sum(1 for line in text.splitlines() if " ERROR " in line or line.startswith("Traceback"))
    celery_log = (run_dir / "celery.log").read_text(errors="replace") if (run_dir / "celery.log").exists() else ""
    return {
        "responses_by_class": dict(statuses),
        "autosave_in_worker_ms": {"count": len(autosave_ms), "p50": percentile(autosave_ms, 50),
                                  "p95": percentile(autosave_ms, 95), "p99": percentile(autosave_ms, 99)},
        "error_lines_logged": logged,
        "celery_tasks_succeeded": len(re.findall(r"Task \S+\[[0-9a-f-]+\] succeeded", celery_log)),
    }  # fmt: skip


def summarise(results: dict, verification: dict, run_dir: Path, autosave_target_ms: float) -> dict:
    samples = results["samples"]
    rows = endpoint_rows(samples)
    opened = results.get("opened_at_s") or [0.0]
    steady_from = max(opened)  # every user has opened their case: the autosave loop alone from here
    steady = {r["endpoint"]: r for r in endpoint_rows(samples, since_s=steady_from) if r["endpoint"] in AUTOSAVES}
    autosave = {r["endpoint"]: r for r in rows if r["endpoint"] in AUTOSAVES}
    total_errors = sum(r["errors"] for r in rows)
    user_errors = sum(n for message, n in results["errors"].items() if " raised " in message)
    saves_ok = (
        verification["found"] == verification["acknowledged"]
        and verification["mismatched_count"] == 0
        and verification["save_ids_with_two_versions"] == 0
        and verification["acknowledged_twice"] == 0
        and not verification["streams_with_gaps"]
    )
    p95_ok = all(r["p95_ms"] < autosave_target_ms for r in autosave.values()) and bool(autosave)
    return {
        "endpoints": rows,
        "requests": len(samples),
        "errors": total_errors + user_errors,
        "error_messages": results["errors"],
        "counts": results["counts"],
        "duration_s": results["duration_s"],
        "all_users_spawned_at_s": results.get("spawned_at_s"),
        "all_cases_open_at_s": round(steady_from, 1),
        "autosave": {
            name: {k: r[k] for k in ("count", "p50_ms", "p95_ms", "p99_ms", "max_ms")} for name, r in autosave.items()
        },
        "autosave_steady_state": {
            name: {k: r[k] for k in ("count", "p50_ms", "p95_ms", "p99_ms", "max_ms")} for name, r in steady.items()
        },
        "server": server_side(run_dir),
        "verification": verification,
        "targets": {"autosave_p95_ms": autosave_target_ms, "errors": 0, "acknowledged_saves_found": "all"},
        "passed": {"autosave_p95": p95_ok, "errors": total_errors + user_errors == 0, "saves": saves_ok},
    }


def _ms(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.0f}"


def markdown(report: dict) -> str:
    setup, v, passed = report["setup"], report["verification"], report["passed"]
    lines = [
        f"Load: {setup['physicians']} physicians, {setup['panel']} panel members, {setup['coordinators']} "
        f"coordinators for {setup['seconds']} s ({report['requests']:,} requests); gunicorn {setup['gunicorn']}; "
        f"{setup['phantom']}.",
        "",
        "| endpoint | count | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["endpoints"]:
        lines.append(f"| {r['endpoint']} | {r['count']:,} | {_ms(r['p50_ms'])} | {_ms(r['p95_ms'])} | "
                     f"{_ms(r['p99_ms'])} | {_ms(r['max_ms'])} | {r['errors']} |")  # fmt: skip
    steady = report["autosave_steady_state"]
    lines += ["", f"Errors: **{report['errors']}** (target 0)."]
    for name, figures in report["autosave"].items():
        s = steady.get(name)
        after = ""
        if s:
            after = f"; once every case was open (t ≥ {report['all_cases_open_at_s']} s): p95 {_ms(s['p95_ms'])} ms"
        lines.append(f"{name}: p95 **{_ms(figures['p95_ms'])} ms** (target < {report['targets']['autosave_p95_ms']} "
                     f"ms){after}.")  # fmt: skip
    worker = report["server"]["autosave_in_worker_ms"]
    lines.append(f"Autosave inside the gunicorn worker (access log): p50 {_ms(worker['p50'])} ms, p95 "
                 f"{_ms(worker['p95'])} ms, p99 {_ms(worker['p99'])} ms.")  # fmt: skip
    lines.append(
        f"Saves acknowledged {v['acknowledged']:,}, found in the database {v['found']:,} (content differs: "
        f"{v['mismatched_count']}; save ids with two versions: {v['save_ids_with_two_versions']}; streams with a gap "
        f"in version numbers: {len(v['streams_with_gaps'])}; stored but unanswered when the run stopped: "
        f"{v['versions_not_acknowledged']}). Events acknowledged {v['events_acknowledged']:,}, stored "
        f"{v['events_stored']:,}."
    )
    server = report["server"]
    lines.append(
        f"Server: responses {server['responses_by_class']}; error lines logged {server['error_lines_logged']}; "
        f"Celery tasks succeeded {server['celery_tasks_succeeded']}."
    )
    lines.append(
        f"Run: steps {report['step_seconds']} s; `uptime` before: {report['uptime_before']}; after: "
        f"{report['uptime_after']}."
    )
    verdict = ", ".join(f"{k}: {'met' if ok else 'NOT met'}" for k, ok in passed.items())
    lines += [f"Verdict: {verdict}.", ""]
    if report["error_messages"]:
        lines += ["Errors:", *[f"- {n}× {m}" for m, n in sorted(report["error_messages"].items(), key=lambda x: -x[1])]]
    return "\n".join(lines) + "\n"
