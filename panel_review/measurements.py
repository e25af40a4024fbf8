"""The size of the panel's corrections, measured once per approved case and stored as endpoint data.

Submitted vs approved for every case; in the AI arm also AI vs submitted (how much the physician changed the
proposal) and AI vs approved. Contours are compared as the whole GTV (all segments together) on the CT grid.
Idempotent: a comparison already stored is not computed again, so a retried task changes nothing.
"""

import numpy as np
from django.db import IntegrityError, transaction

from inference.models import AIContour
from inference.services import is_ai_arm
from inference.storage import read_mask
from trial.audit.recorder import audit_context
from trial.services.trials import require_unlocked

from . import correction_metrics
from .models import CorrectionMetrics, ReviewCase
from .services import version_labels

Comparison = CorrectionMetrics.Comparison


def proposal_seen(case: ReviewCase) -> AIContour | None:
    """The AI proposal the physician started from: the newest made before submission (AI arm only)."""
    if not is_ai_arm(case.patient):
        return None
    submitted_at = case.submission.submitted_at
    return AIContour.objects.filter(patient=case.patient, created_at__lte=submitted_at).order_by("-created_at").first()


def measure(case_id: int) -> list[CorrectionMetrics]:
    case = ReviewCase.objects.select_related("submission__version", "approved_version", "patient").get(pk=case_id)
    if case.approved_version is None:
        raise ValueError(f"Review case {case.code} is not approved yet; there is nothing to measure.")
    submitted, approved = case.submission.version, case.approved_version
    spacing = tuple(float(s) for s in submitted.ct_series.spacing)
    masks = {"submitted": version_labels(submitted) > 0, "approved": version_labels(approved) > 0}
    hashes = {"submitted": submitted.sha256, "approved": approved.sha256}
    pairs = [(Comparison.SUBMITTED_APPROVED, "submitted", "approved")]
    proposal = proposal_seen(case)
    if proposal is not None:
        masks["ai"] = read_mask(proposal)
        hashes["ai"] = proposal.mask_sha256
        pairs += [(Comparison.AI_SUBMITTED, "ai", "submitted"), (Comparison.AI_APPROVED, "ai", "approved")]
    done = set(CorrectionMetrics.objects.filter(case=case).values_list("comparison", flat=True))
    rows = [
        CorrectionMetrics(case=case, comparison=comparison, before_sha256=hashes[before], after_sha256=hashes[after],
                          values=_json(correction_metrics.compare(masks[before], masks[after], spacing).as_dict()))
        for comparison, before, after in pairs if comparison not in done
    ]  # fmt: skip
    _store(case, rows)
    wanted = [comparison for comparison, *_ in pairs]
    return sorted(CorrectionMetrics.objects.filter(case=case, comparison__in=wanted),
                  key=lambda row: wanted.index(row.comparison))  # fmt: skip


def _store(case, rows: list[CorrectionMetrics]) -> None:
    """Every comparison of the case in one transaction, so the database lock sees all of them or none."""
    if not rows:
        return
    try:
        with transaction.atomic(), audit_context(None, reason="correction metrics computed on approval"):
            require_unlocked(case.patient.trial_id, "storing correction metrics")
            for row in rows:
                row.save()
    except IntegrityError:  # a concurrent run stored them first (the same values: they derive from the hashes)
        pass


def _json(values):
    if isinstance(values, dict):
        return {str(k): _json(v) for k, v in values.items()}
    if isinstance(values, np.generic):
        return values.item()
    return values
