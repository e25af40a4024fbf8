"""What the coordinator and data manager dashboards show: accrual, each case's stage and who it waits on,
and the items awaiting a data manager. Plain queries over the apps below; the views only render these."""

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from delineation.cases import status_of
from delineation.models import Submission
from imaging.models import QuarantinedStudy
from inference.models import InferenceJob
from panel_review.models import ReviewAssignment, ReviewCase
from panel_review.services import current_assignments, unmeasured_cases
from trial.models import Allocation, AuditEntry, Patient, StratumCorrection

# A submission waiting this long for the panel's approval is listed for the data manager.
PANEL_WAIT_DAYS = 7
RECENT_DAYS = 30
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


@dataclass(frozen=True)
class CaseRow:
    trial_number: str
    site: str
    stage: str
    waiting_on: str
    since: dt.datetime | None
    age_days: int
    overdue: bool


def case_stage(patient: Patient, approved: bool) -> tuple[str, str, dt.datetime | None]:
    """(stage, waiting on, since) in the coordinator's words. The panel is named as a body, never a member."""
    if patient.status != Patient.Status.RANDOMISED:
        return "Awaiting randomisation", "site coordinator", patient.enrolled_at
    if approved:
        return "Approved", "nobody", None
    status = status_of(patient)
    if status.code == "waiting_images":
        return "Waiting for images", "site coordinator (imaging)", status.since
    if status.code == "waiting_ai":
        return "Waiting for AI", "AI worker / data manager", status.since
    if status.code == "submitted":
        return "Review", "expert panel", status.since
    physician = patient.physician.get_full_name() or patient.physician.get_username()
    return f"Delineation ({status.label.lower()})", physician, status.since


def case_rows(trial, patients, now: dt.datetime) -> list[CaseRow]:
    """One row per visible patient, oldest enrolment first, with age in days and the overdue flag."""
    patients = patients.filter(trial=trial).select_related("site", "physician", "allocation").order_by("enrolled_at")
    approved_ids = set(
        ReviewCase.objects.filter(patient__in=patients, approved_at__isnull=False).values_list("patient_id", flat=True)
    )
    rows = []
    for patient in patients:
        approved = patient.pk in approved_ids
        stage, waiting_on, since = case_stage(patient, approved)
        age = (now - patient.enrolled_at).days
        overdue = not approved and age > trial.approval_due_days
        rows.append(CaseRow(patient.trial_number, patient.site.code, stage, waiting_on, since, age, overdue))
    return rows


def cumulative_by_day(dates: list[dt.date]) -> list[tuple[dt.date, int]]:
    """Running total of randomisations at the end of each day that had one."""
    counts = Counter(dates)
    total, series = 0, []
    for day in sorted(counts):
        total += counts[day]
        series.append((day, total))
    return series


def accrual(trial, patients) -> dict:
    """Randomised counts in total, by site and by stratum level, as series and tables."""
    allocations = list(
        Allocation.objects.filter(trial=trial, patient__in=patients).select_related("patient__site").order_by("pk")
    )
    by_site = defaultdict(list)
    for allocation in allocations:
        by_site[allocation.patient.site.code].append(allocation.randomised_at.date())
    factors = [f for f in trial.strata_factors if f["name"] != "site"]
    strata = [
        {
            "factor": factor["label"],
            "level": level["label"],
            "count": sum(1 for a in allocations if a.strata.get(factor["name"]) == level["code"]),
        }
        for factor in factors
        for level in factor["levels"]
    ]
    enrolled = Counter(patients.filter(trial=trial).values_list("site__code", flat=True))
    sites = [
        {"code": code, "enrolled": enrolled[code], "randomised": len(by_site.get(code, []))}
        for code in sorted(enrolled)
    ]
    series = {"All": cumulative_by_day([a.randomised_at.date() for a in allocations])}
    series.update({code: cumulative_by_day(days) for code, days in sorted(by_site.items())})
    return {
        "total": len(allocations),
        "target": trial.target_accrual,
        "sites": sites,
        "strata": strata,
        "chart": line_chart(series, trial.target_accrual),
    }


def line_chart(series: dict[str, list[tuple[dt.date, int]]], target: int, width=640, height=240) -> str:
    """An inline SVG of step lines against a dashed target line: no JavaScript, readable without styles."""
    pad = 40
    days = [day for points in series.values() for day, _ in points]
    if not days:
        return mark_safe('<p class="muted">No patient randomised yet.</p>')
    start, end = min(days), max(max(days), timezone.now().date())
    span = max((end - start).days, 1)
    top = max([target] + [n for points in series.values() for _, n in points])

    def xy(day: dt.date, n: int) -> str:
        x = pad + (day - start).days / span * (width - 2 * pad)
        y = height - pad - n / top * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    target_y = xy(start, target).split(",")[1]
    parts = [
        f'<svg class="accrual-chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>Cumulative randomisations against the target of {target}</title>",
        f'<line x1="{pad}" y1="{target_y}" x2="{width - pad}" y2="{target_y}" stroke="#888" stroke-dasharray="6 4"/>',
        f'<text x="{width - pad}" y="{float(target_y) - 4}" text-anchor="end" font-size="11">target {target}</text>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#333"/>',
        f'<text x="{pad}" y="{height - pad + 16}" font-size="11">{start:%Y-%m-%d}</text>',
        f'<text x="{width - pad}" y="{height - pad + 16}" font-size="11" text-anchor="end">{end:%Y-%m-%d}</text>',
    ]
    for i, (name, points) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        steps, previous = [xy(start, 0)], 0
        for day, n in points:
            steps += [xy(day, previous), xy(day, n)]
            previous = n
        steps.append(xy(end, previous))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(steps)}"/>')
        parts.append(f'<text x="{pad + 8}" y="{14 + 14 * i}" font-size="11" fill="{colour}">{escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (numbers and escaped names only)


def data_manager_items(trial, now: dt.datetime) -> dict:
    """Everything awaiting a data manager's action."""
    newer_job = InferenceJob.objects.filter(patient=OuterRef("patient"), requested_at__gt=OuterRef("requested_at"))
    failed_jobs = (
        InferenceJob.objects.filter(patient__trial=trial, status=InferenceJob.Status.FAILED)
        .exclude(Exists(newer_job))
        .select_related("patient")
    )
    waiting_panel = (
        Submission.objects.filter(patient__trial=trial, submitted_at__lt=now - dt.timedelta(days=PANEL_WAIT_DAYS))
        .exclude(patient__review_case__approved_at__isnull=False)
        .select_related("patient")
        .order_by("submitted_at")
    )
    refusals = AuditEntry.objects.filter(
        action="signature_refused", timestamp__gte=now - dt.timedelta(days=RECENT_DAYS)
    ).order_by("-seq")
    corrections = (
        StratumCorrection.objects.filter(
            allocation__trial=trial, corrected_at__gte=now - dt.timedelta(days=RECENT_DAYS)
        )
        .select_related("allocation__patient", "corrected_by")
        .order_by("-corrected_at")
    )
    open_cases = ReviewCase.objects.filter(patient__trial=trial, approved_at__isnull=True).order_by("created_at")
    current = {"assignments__withdrawn_at__isnull": True, "assignments__kind": ReviewAssignment.Kind.REVIEW}
    short = open_cases.annotate(reviews=Count("assignments", filter=Q(**current))).filter(
        reviews__lt=trial.panel_reviews_per_case
    )
    open_reviews = (
        current_assignments()
        .filter(case__in=open_cases, approved_at__isnull=True)
        .select_related("case__patient", "reviewer")
        .order_by("assigned_at")
    )
    unmeasured = unmeasured_cases().filter(patient__trial=trial).select_related("patient")
    return {
        "short_of_reviewers": [(case, case.reviews) for case in short.select_related("patient")],
        "reviews_needed": trial.panel_reviews_per_case,
        "open_reviews": [(a, (now - a.assigned_at).days) for a in open_reviews],
        "unmeasured": list(unmeasured),
        "quarantined": list(QuarantinedStudy.objects.filter(status=QuarantinedStudy.Status.HELD)),
        "failed_jobs": list(failed_jobs),
        "waiting_panel": [(s, (now - s.submitted_at).days) for s in waiting_panel],
        "panel_wait_days": PANEL_WAIT_DAYS,
        "refusals": [(entry, refused_meaning(entry)) for entry in refusals],
        "corrections": list(corrections),
        "recent_days": RECENT_DAYS,
    }


def refused_meaning(entry: AuditEntry) -> str:
    """What the refused signature would have signed (the recorder stores it as a [None, meaning] change)."""
    change = (entry.changes or {}).get("meaning") or [None, ""]
    return str(change[-1] or "")
