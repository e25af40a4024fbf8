"""What a physician may do with their case: open it, save contour versions, send interaction events, submit.

Views call only these. Every write runs in one transaction under a lock on the patient row, so two tabs or
a retried request cannot make two versions from one base, and a refused request leaves nothing behind.
"""

import math
import uuid
from collections.abc import Callable

import numpy as np
from django.db import transaction
from django.utils import timezone

from trial.audit.recorder import audit_context
from trial.models import Patient, Signature
from trial.roles import Role, has_role, is_blinded
from trial.services.access import explain_refusal
from trial.services.errors import Conflict, InvalidInput, NotAllowed, NotFound
from trial.services.signatures import check_password, sign
from trial.services.trials import require_unlocked

from . import labelmap_codec, timing
from .cases import latest_version, reference_ct
from .models import DELINEATION, ContourVersion, DelineationSession, EventBatch, SessionEvent, Submission
from .signals import contour_submitted

EVENT_KINDS = frozenset(
    {"open", "pointer", "wheel", "key", "edit", "visibility", "focus", "blur", "pause", "resume", "close"}
)
MAX_EVENTS_PER_BATCH = 5000
MAX_DETAIL_KEYS = 8


class StaleSave(Conflict):
    code = "stale"

    def __init__(self, message: str, latest: int):
        super().__init__(message)
        self.latest = latest


class Locked(Conflict):
    code = "locked"


def cases_of(user):
    """The physician's randomised patients: their delineation cases."""
    return Patient.objects.filter(physician=user, status=Patient.Status.RANDOMISED).select_related(
        "trial", "allocation"
    )


def require_physician(user) -> None:
    if not has_role(user, Role.PHYSICIAN):
        raise NotAllowed("Only the patient's radiation oncologist delineates the GTV.")
    if is_blinded(user):
        raise NotAllowed("Panel members are blinded to the arm, so they cannot also delineate in this trial.")


def case_for(user, pk) -> Patient:
    """The case if `user` is its physician; otherwise a 403 that says why, or 404 if there is no such case."""
    require_physician(user)
    patient = cases_of(user).filter(pk=pk).first()
    if patient is not None:
        return patient
    other = Patient.objects.filter(pk=pk).first()
    if other is None:
        raise NotFound("There is no such case.")
    if other.physician_id == user.pk:
        raise Conflict(f"{other.trial_number} is not randomised yet, so there is nothing to delineate.")
    explain_refusal(user, other)
    raise NotAllowed(f"{other.trial_number} is not assigned to you.")


def grid_of(patient: Patient):
    ct = reference_ct(patient)
    if ct is None:
        raise Conflict(f"{patient.trial_number} has no planning CT yet, so there is no grid to delineate on.")
    return ct, (ct.slices, ct.rows, ct.columns)


def decode_labelmap(patient: Patient, blob: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """The labelmap on the patient's CT grid `shape` (from grid_of, which the callers have already asked)."""
    return _decode_runs(patient, blob, shape).labels()


def _decode_runs(patient: Patient, blob: bytes, shape: tuple[int, int, int]) -> labelmap_codec.Runs:
    try:
        return labelmap_codec.decode_runs(blob, shape, len(patient.trial.gtv_segments))
    except labelmap_codec.LabelmapError as exc:
        raise InvalidInput(f"The contour could not be read: {exc}") from exc


def is_submitted(patient: Patient) -> bool:
    return Submission.objects.filter(patient=patient).exists()


def delineation_lock(patient: Patient) -> str | None:
    """Why the physician's delineation can no longer change (None while it can)."""
    if is_submitted(patient):
        return f"{patient.trial_number} is submitted and locked; it cannot be changed."
    return None


def save_version(
    *,
    actor,
    patient: Patient,
    blob: bytes,
    base_version: int,
    save_id: str,
    session_id=None,
    stream: str = DELINEATION,
    source: str = ContourVersion.Source.PHYSICIAN,
    lock: Callable[[Patient], str | None] = delineation_lock,
):
    """Store the labelmap as the next version of `stream` if it was edited from the stream's latest one.

    Returns (version, created). A save id seen before returns the version it made (a retry after a lost
    answer). A base older than the latest version is refused with StaleSave: another tab saved meanwhile.
    `lock` says why the stream is closed (checked under the patient's row lock), e.g. after submission."""
    try:
        save_uuid = uuid.UUID(str(save_id))
    except ValueError as exc:
        raise InvalidInput("X-Save-Id must be a UUID that identifies this save (reused when it is retried).") from exc
    ct, shape = grid_of(patient)
    segments = len(patient.trial.gtv_segments)
    runs = _decode_runs(patient, blob, shape)  # validated; never expanded to the CT grid (see Runs)
    session = _own_session(actor, patient, session_id, stream) if session_id else None
    spacing = ct.spacing
    voxel_mm3 = float(spacing[0]) * float(spacing[1]) * float(spacing[2])
    with transaction.atomic(), audit_context(actor):
        require_unlocked(patient.trial_id, "saving a contour")
        Patient.objects.select_for_update().get(pk=patient.pk)
        earlier = ContourVersion.objects.filter(save_id=save_uuid).first()
        if earlier is not None:
            if earlier.patient_id != patient.pk or earlier.author_id != actor.pk or earlier.stream != stream:
                raise InvalidInput("This save id belongs to another save; send a new one.")
            return earlier, False
        reason = lock(patient)
        if reason:
            raise Locked(reason)
        latest = latest_version(patient, stream)
        latest_number = latest.number if latest else 0
        if base_version != latest_number:
            raise StaleSave(
                f"This contour was edited from version {base_version}, but version {latest_number} has been saved "
                "since (another tab or window?). Reload the case to continue from the newest version.",
                latest=latest_number,
            )
        version = ContourVersion(
            patient=patient,
            source=source,
            stream=stream,
            number=latest_number + 1,
            based_on=base_version,
            author=actor,
            session=session,
            ct_series=ct,
            shape=list(shape),
            segments=segments,
            labelmap=bytes(blob),  # decode() accepted only maximal runs: the content is canonical
            sha256=runs.sha256(segments),
            volumes_cc=runs.volumes_cc(voxel_mm3, segments),
            save_id=save_uuid,
        )
        version.save()
    return version, True


def read_version(patient: Patient, number: int | None = None, stream: str = DELINEATION) -> ContourVersion:
    versions = ContourVersion.objects.filter(patient=patient, stream=stream)
    version = versions.order_by("-number").first() if number is None else versions.filter(number=number).first()
    if version is None:
        raise NotFound(f"{patient.trial_number} has no saved contour" + (f" version {number}." if number else " yet."))
    return version


def submit(*, actor, patient: Patient, password: str, version_number: int) -> Submission:
    """Sign and lock the physician's GTV; the case moves on to panel review (contour_submitted)."""
    meaning = Signature.Meaning.SUBMIT
    if is_submitted(patient):
        raise Locked(f"{patient.trial_number} is submitted already.")
    check_password(actor, password, meaning)  # a refusal is recorded, outside the transaction below
    with transaction.atomic(), audit_context(actor):
        require_unlocked(patient.trial_id, "submitting a GTV")
        Patient.objects.select_for_update().get(pk=patient.pk)
        if is_submitted(patient):
            raise Locked(f"{patient.trial_number} is submitted already.")
        latest = latest_version(patient)
        if latest is None:
            raise InvalidInput(f"Nothing is saved for {patient.trial_number} yet: draw the GTV first.")
        if version_number != latest.number:
            raise StaleSave(
                f"You asked to submit version {version_number}, but the latest saved version is {latest.number}. "
                "Reload the case and submit what you see.",
                latest=latest.number,
            )
        content = {"patient": patient.trial_number, "version": latest.number, "sha256": latest.sha256}
        signature = sign(actor, meaning, f"delineation.contourversion:{latest.pk}", content)
        submission = Submission(patient=patient, version=latest, signature=signature)
        submission.save()
        # robust: the submission stands if a reaction fails (e.g. the broker is down); the panel's periodic
        # reconciliation opens a review that was not opened here.
        transaction.on_commit(
            lambda: contour_submitted.send(Submission, patient=patient, submission=submission), robust=True
        )
    return submission


def open_session(
    *, actor, patient: Patient, user_agent: str = "", stream: str = DELINEATION, lock=delineation_lock
) -> DelineationSession:
    """A page load of the workstation starts a session; a locked case is read-only and starts none."""
    reason = lock(patient)
    if reason:
        raise Locked(f"{reason} Viewing it does not start a session.")
    with transaction.atomic(), audit_context(actor):
        require_unlocked(patient.trial_id, "starting a timed session")
        session = DelineationSession(patient=patient, user=actor, stream=stream, user_agent=user_agent[:300])
        session.save()
    return session


def record_events(*, actor, session_id, events, batch_id: str | None = None) -> int:
    """Store a batch of interaction events as received, stamped with the server's receipt time.

    With a batch id (the page sends one, and the same one when it retries) a batch is stored once: a retry of a
    batch already stored returns its count and adds nothing."""
    session = DelineationSession.objects.filter(pk=session_id).select_related("patient").first()
    if session is None or session.user_id != actor.pk:
        raise NotFound("There is no such session of yours.")
    batch_uuid = _batch_uuid(batch_id)
    rows = [_event_row(session, item, position) for position, item in enumerate(_event_list(events))]
    with transaction.atomic():
        require_unlocked(session.patient.trial_id, "recording interaction events")
        if batch_uuid is not None:
            DelineationSession.objects.select_for_update().get(pk=session.pk)  # a retry racing its original waits
            earlier = EventBatch.objects.filter(batch_id=batch_uuid).first()
            if earlier is not None:
                if earlier.session_id != session.pk:
                    raise InvalidInput("This event batch id belongs to another session; send a new one.")
                return earlier.events
            EventBatch.objects.create(
                batch_id=batch_uuid, session=session, events=len(rows), received_at=timezone.now()
            )
        SessionEvent.objects.bulk_create(rows)
    return len(rows)


def _batch_uuid(batch_id) -> uuid.UUID | None:
    if batch_id in (None, ""):
        return None
    try:
        return uuid.UUID(str(batch_id))
    except ValueError as exc:
        raise InvalidInput(
            "X-Event-Batch must be a UUID that identifies this batch (reused when it is retried)."
        ) from exc


def _event_list(events) -> list:
    if not isinstance(events, list):
        raise InvalidInput("`events` must be a list of {t, kind, detail} objects.")
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise InvalidInput(f"A batch holds at most {MAX_EVENTS_PER_BATCH} events; this one has {len(events)}.")
    return events


def _event_row(session, item, position) -> SessionEvent:
    if not isinstance(item, dict):
        raise InvalidInput(f"Event {position} is not an object.")
    t, kind, detail = item.get("t"), item.get("kind"), item.get("detail") or {}
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        raise InvalidInput(f"Event {position}: `t` must be the page's performance.now() in ms (a number ≥ 0).")
    if kind not in EVENT_KINDS:
        raise InvalidInput(f"Event {position}: kind {kind!r} is not one of {', '.join(sorted(EVENT_KINDS))}.")
    if not isinstance(detail, dict) or len(detail) > MAX_DETAIL_KEYS or len(str(detail)) > 500:
        raise InvalidInput(f"Event {position}: `detail` must be a small object (at most {MAX_DETAIL_KEYS} keys).")
    return SessionEvent(session=session, t_ms=float(t), kind=kind, detail=detail, received_at=timezone.now())


def _own_session(actor, patient, session_id, stream) -> DelineationSession:
    if not str(session_id).isdecimal():  # the X-Session header, as the browser sent it
        raise InvalidInput(f"X-Session must be the id of your session (a whole number), not {str(session_id)[:40]!r}.")
    session = DelineationSession.objects.filter(pk=session_id, patient=patient, user=actor, stream=stream).first()
    if session is None:
        raise InvalidInput(f"Session {session_id} is not one of yours on {patient.trial_number}.")
    return session


def case_times(patient: Patient, stream: str = DELINEATION, finished_at=None) -> timing.CaseTimes:
    """Wall, active and editing time of one stream of work (the physician's delineation by default, ending at
    submission; a review ends at `finished_at`), computed afresh from the stored events."""
    if stream == DELINEATION and finished_at is None:
        submission = Submission.objects.filter(patient=patient).first()
        finished_at = submission.submitted_at if submission else None
    sessions = []
    for session in DelineationSession.objects.filter(patient=patient, stream=stream).order_by("opened_at", "pk"):
        stored = session.events.all()
        if finished_at is not None:  # what happens after submission or approval is not delineation time
            stored = stored.filter(received_at__lte=finished_at)
        events = [timing.Event(t, kind) for t, kind in stored.values_list("t_ms", "kind")]
        sessions.append(timing.SessionEvents(opened_at=session.opened_at, events=events))
    trial = patient.trial
    return timing.case_times(
        sessions,
        idle_cutoff_s=trial.idle_cutoff_seconds,
        burst_gap_s=trial.edit_burst_seconds,
        submitted_at=finished_at,
    )
