"""The blinded review: cases get a random code and reviewers when a GTV is submitted; a panel member edits
the submitted contour in their own stream of versions, approves it with an electronic signature, then guesses
the arm. Everything a panel member reaches goes through `assignment_for`, which knows them only by code.
"""

import hashlib
import hmac
import random

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from delineation import labelmap_codec
from delineation import services as delineation
from delineation.models import ContourVersion, Submission
from trial import outbox
from trial.audit.recorder import audit_context
from trial.models import Signature
from trial.roles import Role, has_role
from trial.services.access import require_role
from trial.services.errors import Conflict, InvalidInput, NotAllowed, NotFound
from trial.services.signatures import check_password, sign
from trial.services.trials import require_unlocked

from .codes import new_review_code, order_key
from .models import CorrectionMetrics, ReviewAssignment, ReviewCase
from .signals import contour_approved


def _order_secret() -> bytes:
    """A server secret for the members' case orders, derived from SECRET_KEY under its own label."""
    return hmac.new(settings.SECRET_KEY.encode(), b"contourtrial review order", hashlib.sha256).digest()


def panel_members():
    return get_user_model().objects.filter(is_active=True, groups__name=Role.PANEL.value).order_by("pk")


def unmeasured_cases():
    """Approved cases whose correction metrics are not stored (measure() stores all of a case's at once)."""
    return ReviewCase.objects.filter(approved_at__isnull=False).exclude(
        metrics__comparison=CorrectionMetrics.Comparison.SUBMITTED_APPROVED
    )


def current_assignments():
    """Assignments not withdrawn: the only ones a reviewer sees and acts on."""
    return ReviewAssignment.objects.filter(withdrawn_at__isnull=True)


def _least_busy(exclude=()) -> list:
    """Panel members by open workload (ties broken at random), so cases spread over the panel."""
    members = [m for m in panel_members() if m.pk not in set(exclude)]
    open_work = current_assignments().filter(approved_at__isnull=True)
    load = {row["reviewer"]: row["n"] for row in open_work.values("reviewer").annotate(n=Count("pk"))}
    random.SystemRandom().shuffle(members)
    return sorted(members, key=lambda m: load.get(m.pk, 0))


def _assign(case: ReviewCase, reviewer, kind: str) -> ReviewAssignment:
    assignment = ReviewAssignment(
        case=case, reviewer=reviewer, kind=kind, order_key=order_key(_order_secret(), reviewer.pk, case.code)
    )
    assignment.save()
    return assignment


def open_review(submission: Submission) -> ReviewCase:
    """On contour_submitted: a review case under a fresh random code, assigned to the trial's number of
    reviewers (idempotent: a second call returns the case)."""
    patient = submission.patient
    with transaction.atomic(), audit_context(None, reason="GTV submitted: blinded panel review opened"):
        require_unlocked(patient.trial_id, "opening a panel review")
        patient.__class__.objects.select_for_update().get(pk=patient.pk)  # the receiver and reconcile may race
        existing = ReviewCase.objects.filter(submission=submission).first()
        if existing is not None:
            return existing
        for _ in range(10):  # a clash of 40 random bits is unlikely; retry if it happens
            try:
                with transaction.atomic():
                    case = ReviewCase(code=new_review_code(), patient=patient, submission=submission)
                    case.save()
                break
            except IntegrityError:
                continue
        else:
            raise RuntimeError("could not draw an unused review code")
        fill(case)
    return case


def fill(case: ReviewCase) -> list[ReviewAssignment]:
    """Give an open case the reviews it lacks: at opening, and again once the panel has members to spare (a
    panel short of members, a withdrawn assignment). Never the case's physician, never a member twice."""
    with transaction.atomic(), audit_context(None, reason="review case assigned to the panel"):
        require_unlocked(case.patient.trial_id, "assigning a review")
        case = ReviewCase.objects.select_for_update().select_related("patient__trial").get(pk=case.pk)
        if case.approved_at is not None:
            return []
        current = case.assignments.filter(withdrawn_at__isnull=True)
        needed = case.patient.trial.panel_reviews_per_case
        reviews = current.filter(kind=ReviewAssignment.Kind.REVIEW)
        missing = needed - reviews.count()
        if missing > 0:
            return [_assign(case, m, ReviewAssignment.Kind.REVIEW) for m in _least_busy(_ineligible(case))[:missing]]
        approved = reviews.filter(approved_at__isnull=False).count()
        if needed > 1 and approved >= needed and not current.filter(kind=ReviewAssignment.Kind.CONSENSUS).exists():
            consensus = _assign_consensus(case)
            return [consensus] if consensus else []
    return []


def _ineligible(case: ReviewCase) -> list[int]:
    """The case's physician and everyone assigned to it before (withdrawn or not)."""
    return [case.patient.physician_id, *case.assignments.values_list("reviewer_id", flat=True)]


def _assign_consensus(case: ReviewCase) -> ReviewAssignment | None:
    """A third member for the consensus; with none to spare, the first approving reviewer (if not withdrawn
    from a consensus of this case already)."""
    third = _least_busy(_ineligible(case))
    if third:
        return _assign(case, third[0], ReviewAssignment.Kind.CONSENSUS)
    had_consensus = case.assignments.filter(kind=ReviewAssignment.Kind.CONSENSUS).values_list("reviewer_id")
    approvers = (
        case.assignments.filter(kind=ReviewAssignment.Kind.REVIEW, approved_at__isnull=False, withdrawn_at__isnull=True)
        .exclude(reviewer_id__in=had_consensus)
        .exclude(reviewer__is_active=False)
        .order_by("approved_at")
    )
    first = approvers.first()
    return _assign(case, first.reviewer, ReviewAssignment.Kind.CONSENSUS) if first else None


def withdraw(*, actor, assignment: ReviewAssignment, reason: str) -> list[ReviewAssignment]:
    """Take an unapproved review back (the reviewer is away or conflicted) and give the case to another member.
    A data manager's action with a reason, audited; `actor` None is reconciliation (reviewer left the panel)."""
    if actor is not None:
        require_role(actor, Role.DATA_MANAGER, action="reassign panel reviews")
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise InvalidInput("Give the reason for reassigning the review (at least 10 characters).")
    patient = assignment.case.patient
    with transaction.atomic(), audit_context(actor, reason=reason):
        require_unlocked(patient.trial_id, "reassigning a review")
        patient.__class__.objects.select_for_update().get(pk=patient.pk)  # as saves and approvals: trial, patient
        assignment = ReviewAssignment.objects.select_for_update().get(pk=assignment.pk)
        if assignment.withdrawn_at is not None:
            raise Conflict("This review was reassigned already.")
        if assignment.approved_at is not None:
            raise Conflict("This review is approved and signed; it cannot be reassigned.")
        assignment.withdrawn_at = timezone.now()
        assignment.withdrawn_reason = reason
        assignment.save()
        return fill(assignment.case)


def require_panel(user) -> None:
    if not has_role(user, Role.PANEL):
        raise NotAllowed("Only expert panel members review cases.")


def assignments_of(user):
    """The member's assignments in their own random order."""
    require_panel(user)
    return current_assignments().filter(reviewer=user).select_related("case").order_by("order_key")


def assignment_for(user, code: str) -> ReviewAssignment:
    """The member's current assignment on the case with this code: the consensus when they have one, else their
    review. A code that is not theirs gets the same answer as one that does not exist."""
    require_panel(user)
    assignments = (
        current_assignments()
        .filter(reviewer=user, case__code=code)
        .select_related("case__patient__trial", "case__submission__version")
    )
    assignment = assignments.filter(kind=ReviewAssignment.Kind.CONSENSUS).first() or assignments.first()
    if assignment is None:
        raise NotFound("There is no review case with this code among yours.")
    return assignment


def status_of(assignment: ReviewAssignment) -> str:
    if assignment.approved_at is None:
        started = ContourVersion.objects.filter(patient=assignment.case.patient, stream=assignment.stream).exists()
        return "in_progress" if started else "to_review"
    return "approved" if assignment.guess else "guess_due"


def _lock(assignment: ReviewAssignment):
    def lock(patient) -> str | None:
        fresh = ReviewAssignment.objects.get(pk=assignment.pk)
        if fresh.withdrawn_at:
            return f"Review {assignment.case.code} was reassigned to another panel member."
        return f"Review {assignment.case.code} is approved and locked." if fresh.approved_at else None

    return lock


def start_version(assignment: ReviewAssignment) -> ContourVersion:
    """What the reviewer starts from: the submitted GTV; a consensus starts from the first review's approval."""
    if assignment.kind == ReviewAssignment.Kind.CONSENSUS:
        first = (
            assignment.case.assignments.filter(kind=ReviewAssignment.Kind.REVIEW, approved_at__isnull=False)
            .order_by("approved_at")
            .first()
        )
        return first.approved_version
    return assignment.case.submission.version


def save(*, actor, assignment: ReviewAssignment, blob: bytes, base_version: int, save_id: str, session_id=None):
    return delineation.save_version(
        actor=actor, patient=assignment.case.patient, blob=blob, base_version=base_version, save_id=save_id,
        session_id=session_id, stream=assignment.stream, source=ContourVersion.Source.PANEL, lock=_lock(assignment),
    )  # fmt: skip


def open_session(*, actor, assignment: ReviewAssignment, user_agent: str = ""):
    return delineation.open_session(
        actor=actor, patient=assignment.case.patient, user_agent=user_agent, stream=assignment.stream,
        lock=_lock(assignment),
    )  # fmt: skip


def approve(*, actor, assignment: ReviewAssignment, password: str, version_number: int) -> ReviewAssignment:
    """Sign the reviewed GTV ("I approve this GTV for treatment planning") and lock this review. The case is
    approved by the single review, or by the consensus after two; then the metrics are computed."""
    meaning = Signature.Meaning.APPROVE
    if assignment.approved_at is not None:
        raise delineation.Locked(f"Review {assignment.case.code} is approved already.")
    check_password(actor, password, meaning)
    patient = assignment.case.patient
    with transaction.atomic(), audit_context(actor):
        require_unlocked(patient.trial_id, "approving a GTV")
        patient.__class__.objects.select_for_update().get(pk=patient.pk)
        assignment = ReviewAssignment.objects.select_for_update().select_related("case").get(pk=assignment.pk)
        if assignment.withdrawn_at is not None:
            raise delineation.Locked(f"Review {assignment.case.code} was reassigned to another panel member.")
        if assignment.approved_at is not None:
            raise delineation.Locked(f"Review {assignment.case.code} is approved already.")
        latest = delineation.latest_version(patient, assignment.stream)
        if latest is None or version_number != latest.number:
            raise delineation.StaleSave(
                f"You asked to approve version {version_number}, but the latest saved version of this review is "
                f"{latest.number if latest else 'none'}. Reload the case and approve what you see.",
                latest=latest.number if latest else 0,
            )
        content = {"case": assignment.case.code, "version": latest.number, "sha256": latest.sha256}
        assignment.signature = sign(actor, meaning, f"delineation.contourversion:{latest.pk}", content)
        assignment.approved_version = latest
        assignment.approved_at = timezone.now()
        assignment.save()
        _advance(assignment)
    return assignment


def _advance(assignment: ReviewAssignment) -> None:
    case = assignment.case
    if assignment.kind == ReviewAssignment.Kind.CONSENSUS or case.patient.trial.panel_reviews_per_case == 1:
        case.approved_version = assignment.approved_version
        case.approved_at = assignment.approved_at
        case.save()
        # robust: the approval stands if its reaction fails; reconcile() measures an approved case left unmeasured.
        transaction.on_commit(lambda: contour_approved.send(ReviewCase, case=case), robust=True)
    else:
        fill(case)  # the consensus, once both reviews are approved


def record_guess(*, actor, assignment: ReviewAssignment, guess: str) -> ReviewAssignment:
    if guess not in ReviewAssignment.Guess.values:
        raise InvalidInput(f"The answer must be one of {', '.join(ReviewAssignment.Guess.values)}, not {guess!r}.")
    with transaction.atomic(), audit_context(actor):
        require_unlocked(assignment.case.patient.trial_id, "answering the blinding question")
        assignment = ReviewAssignment.objects.select_for_update().get(pk=assignment.pk)
        if assignment.approved_at is None:
            raise Conflict("Answer the blinding question after approving the GTV.")
        if assignment.guess:
            raise Conflict("The blinding question is answered already; the first answer counts.")
        assignment.guess = guess
        assignment.guessed_at = timezone.now()
        assignment.save()
    return assignment


def version_labels(version: ContourVersion) -> np.ndarray:
    return labelmap_codec.decode(bytes(version.labelmap), tuple(version.shape), version.segments)


def reconcile() -> dict[str, int]:
    """Bring every open trial's review work up to date; run periodically (Celery beat) and when the panel changes.

    Catches what a failed after-commit step or a short panel left behind: a submission without a review case,
    an assignment held by someone no longer on the panel (withdrawn), a case short of reviewers, an approved case
    whose correction metrics were never stored (measurement sent again). Locked trials are left alone."""
    from .tasks import measure_corrections

    unlocked = {"patient__trial__data_locked_at__isnull": True}
    opened = 0
    for submission in Submission.objects.filter(review_case__isnull=True, **unlocked).select_related("patient"):
        open_review(submission)
        opened += 1
    members = panel_members().values_list("pk", flat=True)
    gone = current_assignments().filter(approved_at__isnull=True, case__approved_at__isnull=True)
    withdrawn = assigned = 0
    for assignment in gone.filter(**{f"case__{k}": v for k, v in unlocked.items()}).exclude(reviewer__in=members):
        reason = "The reviewer is no longer an active panel member."
        assigned += len(withdraw(actor=None, assignment=assignment, reason=reason))
        withdrawn += 1
    assigned += sum(len(fill(case)) for case in ReviewCase.objects.filter(approved_at__isnull=True, **unlocked))
    unmeasured = list(unmeasured_cases().filter(**unlocked).values_list("pk", flat=True))
    for case_id in unmeasured:
        outbox.enqueue(measure_corrections, case_id)
    return {"opened": opened, "withdrawn": withdrawn, "assigned": assigned, "measurements_sent": len(unmeasured)}
