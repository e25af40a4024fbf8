"""The endpoint dataset: one row per randomised patient (intention to treat), with its codebook.

Built from the stored data only: times are recomputed from the raw interaction events, metrics read from the
stored correction metrics. The full (unblinded) frame is built first; `blind` derives what statisticians get
while the trial is blinded: the allocation coded A/B, the panel's guess as right/wrong, and every column that
exists only in the AI arm (model, AI times, AI comparisons, AI deviations) left out, since it would give the
coding away. After the database lock the full frame is the sealed snapshot taken at lock (services).
"""

import hashlib
import hmac

import pandas as pd
from django.conf import settings
from django.db import transaction

from delineation import services as delineation
from delineation.models import DelineationSession, Submission
from imaging.models import ImagingCompletion
from inference.models import AIContour, InferenceJob
from panel_review.measurements import proposal_seen
from panel_review.models import CorrectionMetrics, ReviewAssignment, ReviewCase
from trial.audit.recorder import audit_context
from trial.models import Patient, StaffProfile, Trial
from trial.randomisation.design import ARM_LABELS

from .codebook import Codebook, Variable
from .models import ArmCoding

METRICS = [  # (column suffix, key in CorrectionMetrics.values, label, unit, kind)
    ("dice", ("dice",), "volumetric Dice", "", "float"),
    ("sdsc_1mm", ("surface_dice", "1"), "surface Dice at 1 mm", "", "float"),
    ("sdsc_2mm", ("surface_dice", "2"), "surface Dice at 2 mm", "", "float"),
    ("sdsc_3mm", ("surface_dice", "3"), "surface Dice at 3 mm", "", "float"),
    ("hd95_mm", ("hd95_mm",), "95th-percentile Hausdorff distance", "mm", "float"),
    ("hd_mm", ("hausdorff_mm",), "Hausdorff distance", "mm", "float"),
    ("msd_mm", ("msd_mm",), "mean surface distance (symmetric)", "mm", "float"),
    ("apl_0mm", ("apl_mm", "0"), "added path length, 0 mm tolerance", "mm", "float"),
    ("apl_1mm", ("apl_mm", "1"), "added path length, 1 mm tolerance", "mm", "float"),
    ("vol_before_cc", ("volume_before_cc",), "volume before", "cm³", "float"),
    ("vol_after_cc", ("volume_after_cc",), "volume after", "cm³", "float"),
    ("vol_change_cc", ("volume_change_cc",), "volume change (after − before)", "cm³", "float"),
    ("vol_change_rel", ("volume_change_relative",), "relative volume change", "", "float"),
    ("edited_slices", ("edited_slices",), "axial slices edited", "slices", "integer"),
]
COMPARISONS = [  # (prefix, comparison, label, AI arm only)
    ("sa", CorrectionMetrics.Comparison.SUBMITTED_APPROVED, "submitted vs approved", False),
    ("as", CorrectionMetrics.Comparison.AI_SUBMITTED, "AI vs submitted", True),
    ("aa", CorrectionMetrics.Comparison.AI_APPROVED, "AI vs approved", True),
]
GUESSES = dict(ReviewAssignment.Guess.choices)  # the arms' names as the trial gives them, and "Don't know"
GUESS_OUTCOMES = {"correct": "Right arm", "incorrect": "Wrong arm", "dont_know": "Don't know"}


def physician_pseudonym(user_id: int) -> str:
    """Stable and not reversible without the server secret: the analysis can group by physician."""
    key = hmac.new(settings.SECRET_KEY.encode(), b"contourtrial physician pseudonym", hashlib.sha256).digest()
    return "PHY-" + hmac.new(key, str(user_id).encode(), hashlib.sha256).hexdigest()[:8].upper()


def arm_coding(trial: Trial) -> ArmCoding:
    """The trial's A/B coding, drawn the first time it is needed (under the trial's row lock, audited)."""
    coding = ArmCoding.objects.filter(trial=trial).first()
    if coding is not None:
        return coding
    with transaction.atomic(), audit_context(None, reason="arm coding for blinded exports drawn"):
        Trial.objects.select_for_update(no_key=True).get(pk=trial.pk)
        coding = ArmCoding.objects.filter(trial=trial).first()
        if coding is None:
            coding = ArmCoding(trial=trial)
            coding.save()
    return coding


def codebook(trial: Trial, unblinded: bool) -> Codebook:
    def v(name, label, kind, unit="", definition="", source="", labels=None):
        return Variable(name, label, kind, unit, definition or label, source, labels or {})

    sites = {code: code for code in sorted(trial.sites.values_list("code", flat=True))}
    variables = [
        v("trial_id", "Trial id", "string", source="trial.Patient.trial_number"),
        v("site", "Site", "category", labels=sites, source="trial.Patient.site"),
    ]
    for factor in trial.strata_factors:
        if factor["name"] != "site":
            levels = {level["code"]: level["label"] for level in factor["levels"]}
            variables.append(v(f"stratum_{factor['name']}", f"Stratum: {factor['label']}"[:80], "category",
                               definition="as randomised, with data managers' corrections applied",
                               source="trial.Allocation.strata", labels=levels))  # fmt: skip
    arms = dict(ARM_LABELS) if unblinded else {"A": "Arm A", "B": "Arm B"}
    variables += [
        v("allocation", "Allocation", "category", labels=arms, source="trial.Allocation.arm",
          definition="the randomised arm (intention to treat); coded A/B until a data manager unblinds after lock"),
        v("randomised_at", "Randomised (UTC)", "datetime", source="trial.Allocation.randomised_at"),
        v("randomisation_date", "Randomisation date", "date", source="trial.Allocation.randomised_at"),
        v("physician", "Physician (pseudonym)", "string", source="trial.Patient.physician, keyed hash"),
        v("physician_experience_y", "Physician experience", "integer", "years",
          source="trial.StaffProfile.experience_years"),
        v("images_complete_at", "Required images complete (UTC)", "datetime", source="imaging.ImagingCompletion"),
        v("first_opened_at", "Delineation first opened (UTC)", "datetime", source="delineation.DelineationSession"),
        v("submitted_at", "GTV submitted (UTC)", "datetime", source="delineation.Submission"),
        v("approved_at", "GTV approved by the panel (UTC)", "datetime", source="panel_review.ReviewCase"),
        v("delin_wall_s", "Delineation wall time", "float", "s", "first opening to submission",
          "delineation events (docs/DELINEATION.md)"),
        v("delin_active_s", "Delineation active time (primary endpoint)", "float", "s",
          "sum of gaps between interaction events, without idle gaps over the cut-off and pauses",
          "delineation events"),
        v("delin_editing_s", "Delineation editing time", "float", "s", "time within bursts of edit events",
          "delineation events"),
        v("delin_sessions", "Delineation sessions", "integer", source="delineation.DelineationSession"),
        v("review_active_s", "Panel review active time", "float", "s",
          "all review streams of the case, reassigned ones included", "review events"),
    ]  # fmt: skip
    for prefix, _comparison, label, ai_only in COMPARISONS:
        if ai_only and not unblinded:
            continue
        for suffix, _key, metric_label, unit, kind in METRICS:
            definition = f"{metric_label}, {label} (docs/METRICS.md)"
            variables.append(v(f"{prefix}_{suffix}", f"{label}: {metric_label}"[:80], kind, unit, definition,
                               "panel_review.CorrectionMetrics"))  # fmt: skip
    if unblinded:
        variables += [
            v("ai_model", "AI model (name and version)", "string", source="inference.ModelVersion"),
            v("ai_inference_s", "AI proposal time", "float", "s", source="inference.AIContour.total_seconds"),
            v("ai_proposal_at", "AI proposal made (UTC)", "datetime", source="inference.AIContour.created_at"),
        ]
    if unblinded:  # the deviations found so far exist only in the AI arm: they would give the coding away
        variables.append(v("deviation", "Protocol deviation", "string", source="derived"))
    variables.append(v("missing_reason", "Reason for missing endpoint data", "string", source="derived"))
    if unblinded:
        variables.append(v("blinding_guess", "Panel's guess of the arm", "category", labels=GUESSES,
                           source="panel_review.ReviewAssignment.guess (the approving review)"))  # fmt: skip
    else:  # the raw guess next to A/B would give the coding away when the panel guesses well
        variables.append(v("blinding_guess", "Panel's guess: right, wrong or don't know", "category",
                           labels=GUESS_OUTCOMES, source="panel_review.ReviewAssignment.guess vs the arm"))  # fmt: skip
    return Codebook(variables, title=f"Endpoint data of {trial.protocol_id}")


def build(trial: Trial, unblinded: bool) -> tuple[pd.DataFrame, Codebook]:
    """The dataset from the live data: full when unblinded, else blinded."""
    full = build_full(trial)
    if unblinded:
        return full, codebook(trial, unblinded=True)
    return blinded(trial, full)


def blinded(trial: Trial, full: pd.DataFrame) -> tuple[pd.DataFrame, Codebook]:
    """The blinded dataset derived from a full frame (live or sealed at lock), with its codebook."""
    book = codebook(trial, unblinded=False)
    return blind(full, arm_coding(trial).ai_code, book), book


def blind(full: pd.DataFrame, ai_code: str, book: Codebook) -> pd.DataFrame:
    """Pure: the allocation as its A/B code, the panel's guess as right/wrong/don't know, and only the columns
    of the blinded codebook (the AI-only ones dropped)."""
    other = "B" if ai_code == "A" else "A"
    frame = full.copy()
    arms = frame["allocation"].astype(object)
    frame["blinding_guess"] = [_guess_outcome(g, arm) for g, arm in zip(frame["blinding_guess"], arms, strict=True)]
    frame["allocation"] = arms.map({"ai": ai_code, "manual": other})
    return book.conform(frame[book.names])


def _guess_outcome(guess, arm: str) -> str | None:
    if not isinstance(guess, str) or not guess:  # missing (NaN after conform)
        return None
    if guess == "dont_know":
        return guess
    return "correct" if guess == arm else "incorrect"


def build_full(trial: Trial) -> pd.DataFrame:
    """Every column, the arms named: what the sealed snapshot at lock holds."""
    book = codebook(trial, unblinded=True)
    patients = (
        Patient.objects.filter(trial=trial, status=Patient.Status.RANDOMISED)
        .select_related("allocation", "site")
        .order_by("trial_number")
    )
    experience = dict(StaffProfile.objects.values_list("user_id", "experience_years"))
    rows = [_row(patient, book, experience) for patient in patients]
    frame = pd.DataFrame(rows, columns=book.names) if rows else pd.DataFrame(columns=book.names)
    return book.conform(frame)


def _row(patient, book, experience) -> dict:
    allocation = patient.allocation
    strata = patient.effective_strata()
    completion = ImagingCompletion.objects.filter(patient=patient).first()
    submission = Submission.objects.filter(patient=patient).select_related("version").first()
    review = ReviewCase.objects.filter(patient=patient).first()
    first_session = DelineationSession.objects.filter(patient=patient, stream="delineation").order_by("opened_at")
    first_session = first_session.first()
    times = delineation.case_times(patient)
    row = {
        "trial_id": patient.trial_number,
        "site": patient.site.code,
        "allocation": allocation.arm,
        "randomised_at": allocation.randomised_at,
        "randomisation_date": allocation.randomised_at.date(),
        "physician": physician_pseudonym(patient.physician_id),
        "physician_experience_y": experience.get(patient.physician_id),
        "images_complete_at": completion.completed_at if completion else None,
        "first_opened_at": first_session.opened_at if first_session else None,
        "submitted_at": submission.submitted_at if submission else None,
        "approved_at": review.approved_at if review else None,
        "delin_wall_s": times.wall_seconds,
        "delin_active_s": times.active_seconds if times.sessions else None,
        "delin_editing_s": times.editing_seconds if times.sessions else None,
        "delin_sessions": times.sessions,
        "review_active_s": _review_active(review),
        "blinding_guess": _guess(review),
    }
    for name in book.names:
        if name.startswith("stratum_"):
            row[name] = strata.get(name.removeprefix("stratum_"))
    metrics = {m.comparison: m.values for m in CorrectionMetrics.objects.filter(case=review)} if review else {}
    for prefix, comparison, _label, _ai_only in COMPARISONS:
        values = metrics.get(comparison)
        for suffix, key, *_ in METRICS:
            row[f"{prefix}_{suffix}"] = _lookup(values, key)
    proposal = proposal_seen(review) if review else None
    row["ai_model"] = str(proposal.model_version) if proposal else None
    row["ai_inference_s"] = proposal.total_seconds if proposal else None
    row["ai_proposal_at"] = proposal.created_at if proposal else None
    row["deviation"] = "; ".join(_deviations(patient, allocation.arm, submission)) or None
    row["missing_reason"] = _missing_reason(completion, submission, review)
    return row


def _lookup(values, key):
    for part in key:
        if not isinstance(values, dict):
            return None
        values = values.get(part)
    return values


def _review_active(review) -> float | None:
    if review is None:
        return None
    total, any_session = 0.0, False
    for assignment in review.assignments.all():
        times = delineation.case_times(review.patient, stream=assignment.stream, finished_at=assignment.approved_at)
        total += times.active_seconds
        any_session |= times.sessions > 0
    return total if any_session else None


def _guess(review) -> str | None:
    """The approving reviewer's guess of the arm."""
    if review is None or review.approved_version_id is None:
        return None
    approving = review.assignments.filter(approved_version_id=review.approved_version_id).first()
    return (approving.guess if approving else "") or None


def _deviations(patient, arm, submission) -> list[str]:
    found = []
    if arm == "ai":
        failed = InferenceJob.objects.filter(patient=patient, status="failed").exists()
        proposal = AIContour.objects.filter(patient=patient).order_by("created_at").first()
        if failed and proposal is None:
            found.append("AI arm delineated without an AI proposal (the AI job failed)")
        elif submission and proposal and proposal.created_at > submission.submitted_at:
            found.append("AI proposal made only after submission")
    return found


def _missing_reason(completion, submission, review) -> str | None:
    if completion is None:
        return "required images not complete"
    if submission is None:
        return "GTV not submitted yet"
    if review is None or review.approved_at is None:
        return "panel review not approved yet"
    return None


def events_codebook(trial: Trial) -> Codebook:
    def v(name, label, kind, unit="", definition="", labels=None):
        return Variable(name, label, kind, unit, definition or label, "delineation.SessionEvent", labels or {})

    kinds = {kind: kind for kind in sorted(delineation.EVENT_KINDS)}
    return Codebook(
        [
            v("trial_id", "Trial id", "string"),
            v(
                "work",
                "Delineation or panel review",
                "category",
                labels={"delineation": "Delineation", "review": "Panel review"},
            ),
            v("session", "Session number within the case and work", "integer"),
            v("opened_at", "Session opened (UTC, server)", "datetime"),
            v("t_ms", "Event time on the page's monotonic clock", "float", "ms"),
            v("kind", "Event kind", "category", labels=kinds),
            v("received_at", "Received by the server (UTC)", "datetime"),
        ],
        title=f"Interaction events of {trial.protocol_id}",
    )


def events(trial: Trial) -> tuple[pd.DataFrame, Codebook]:
    """Every stored interaction event in long format, for re-analysis of the times (docs/DELINEATION.md)."""
    from delineation.models import SessionEvent

    book = events_codebook(trial)
    numbers: dict = {}
    rows = []
    queryset = SessionEvent.objects.filter(session__patient__trial=trial).select_related("session__patient")
    for event in queryset.order_by("session__patient__trial_number", "session__opened_at", "session_id", "t_ms"):
        session = event.session
        work = "delineation" if session.stream == "delineation" else "review"
        key = (session.patient_id, work)
        seen = numbers.setdefault(key, {})
        number = seen.setdefault(session.pk, len(seen) + 1)
        rows.append({"trial_id": session.patient.trial_number, "work": work, "session": number,
                     "opened_at": session.opened_at, "t_ms": event.t_ms, "kind": event.kind,
                     "received_at": event.received_at})  # fmt: skip
    frame = pd.DataFrame(rows, columns=book.names) if rows else pd.DataFrame(columns=book.names)
    return book.conform(frame), book
