"""A whole synthetic trial through every real stage, with the services the pages use: enrolment and
randomisation by the coordinators, phantom images through the ingest pipeline, the AI proposal by the
inference runner (AI arm), the physician's contour with a recorded event stream and autosaved versions, the
signed submission, the panel's correction, approval and blinding guess, and the correction metrics.

Only the people are simulated: their edits are plausible changes of the phantom's true GTV (manual arm) or of
the AI mask (AI arm), their interaction events are drawn so that the AI arm tends to be quicker, and they
sign with the demo users' passwords. Wall times are compressed (everything happens within seconds); active
and editing times come from the simulated event streams, exactly as for real sessions.
"""

import datetime as dt
import time
import uuid
from dataclasses import dataclass

import numpy as np
from django.contrib.auth import get_user_model
from django.utils import timezone
from scipy import ndimage

from delineation import services as delineation
from delineation.labelmap_codec import encode
from imaging.demo_images import store_demo_phantom
from inference.models import InferenceJob
from inference.runner import run as run_inference
from inference.storage import read_mask
from panel_review import measurements
from panel_review import services as review
from panel_review.models import ReviewCase
from trial.management.commands.seed_demo import demo_password
from trial.models import Patient, Site, Trial
from trial.services import enrolment, randomisation
from trial.services.hospital_ids import hospital_id_hash

SITES = {"AAR": ("coordinator", "physician"), "ODE": ("coordinator_ode", "physician_ode")}


@dataclass(frozen=True)
class SimulatedPatient:
    trial_number: str
    arm: str
    approved: bool


# ---------------------------------------------------------------- the people (pure: numpy and scipy only)


def physician_contour(start: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible delineation: from the AI mask, part of the slices are corrected towards the truth; from
    nothing, the truth drawn with a slightly wrong margin on some slices and sometimes a slice left out."""
    contour = start.copy() if start.any() else truth.copy()
    slices = np.flatnonzero((contour | truth).any(axis=(1, 2)))
    for z in slices:
        if start.any() and rng.random() < 0.5:
            contour[z] = truth[z]
        elif rng.random() < 0.3:
            grow = rng.random() < 0.5
            contour[z] = ndimage.binary_dilation(contour[z]) if grow else ndimage.binary_erosion(contour[z])
    if not start.any() and len(slices) > 2 and rng.random() < 0.3:
        contour[slices[-1]] = False
    return contour


def panel_contour(submitted: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The panel corrects most slices back to the truth and leaves the rest as submitted."""
    approved = submitted.copy()
    for z in np.flatnonzero((submitted | truth).any(axis=(1, 2))):
        if rng.random() < 0.8:
            approved[z] = truth[z]
    return approved


def event_stream(rng: np.random.Generator, median_active_s: float, edits: int) -> list[dict]:
    """Interaction events whose active time is drawn around `median_active_s`, with a few idle gaps over the
    cut-off (not counted) and `edits` edit events among them."""
    target = rng.lognormal(np.log(median_active_s), 0.35)
    events, t, active = [{"t": 0.0, "kind": "open"}], 0.0, 0.0
    while active < target:
        gap = rng.exponential(4.0)
        if rng.random() < 0.01:
            gap += 90.0  # stepped away: an idle gap, not active time
        else:
            active += gap
        t += gap
        events.append({"t": round(t * 1000, 1), "kind": rng.choice(["pointer", "wheel", "key", "pointer"])})
    edit_times = np.sort(rng.uniform(0, t, size=max(edits, 1)))
    events += [{"t": round(float(x) * 1000, 1), "kind": "edit"} for x in edit_times]
    return sorted(events, key=lambda e: e["t"])


def guess(arm: str, rng: np.random.Generator) -> str:
    """The panel guesses the arm right a little more often than chance, and sometimes does not know."""
    draw = rng.random()
    if draw < 0.2:
        return "dont_know"
    other = "manual" if arm == "ai" else "ai"
    return arm if draw < 0.65 else other


# ---------------------------------------------------------------- the stages (the same services as the pages)


def simulate(trial: Trial, patients: int, seed: int, rows: int = 128, slices: int | None = 40, log=print) -> list:
    rng = np.random.default_rng(seed)
    users = {u.username: u for u in get_user_model().objects.filter(username__in=[*sum(SITES.values(), ())])}
    done = []
    for index in range(patients):
        if Patient.objects.filter(trial=trial, hospital_id_hash=hospital_id_hash(f"SIM-{seed}-{index:04d}")).exists():
            continue  # simulated before with this seed: running again adds nothing
        site = "AAR" if index % 2 == 0 else "ODE"
        coordinator, physician = (users[name] for name in SITES[site])
        hospital_id = f"SIM-{seed}-{index:04d}"
        patient = enrolment.enrol(
            actor=coordinator, trial=trial, site=Site.objects.get(code=site), hospital_id=hospital_id,
            physician=physician, eligibility={c["code"]: c["kind"] == "inclusion" for c in trial.eligibility_criteria},
            consent_date=timezone.now().date() - dt.timedelta(days=1),
            consent_form_version=trial.consent_form_versions[-1], strata=_strata(trial, rng),
        )  # fmt: skip
        arm = randomisation.randomise(
            actor=coordinator, patient=patient, password=demo_password(coordinator.username)
        ).arm
        _, truth = store_demo_phantom(patient, hospital_id, seed=seed * 1000 + index, rows=rows, slices=slices)
        start = _ai_mask(patient) if arm == "ai" else np.zeros_like(truth)
        submitted = _delineate(patient, physician, start, truth, arm, rng)
        approved = _review(patient, submitted, truth, arm, rng)
        done.append(SimulatedPatient(patient.trial_number, arm, approved))
        log(f"{patient.trial_number}: {arm}, images, {'AI proposal, ' if start.any() else ''}delineated, "
            f"{'approved' if approved else 'not approved'}")  # fmt: skip
    return done


def _strata(trial: Trial, rng) -> dict:
    return {f["name"]: str(rng.choice([lv["code"] for lv in f["levels"]]))
            for f in trial.strata_factors if f["name"] != "site"}  # fmt: skip


def _ai_mask(patient) -> np.ndarray:
    """Run the AI job the imaging_complete signal queued, in this process (a worker may have taken it)."""
    job = InferenceJob.objects.filter(patient=patient).order_by("-requested_at").first()
    if job is None or job.status == InferenceJob.Status.FAILED:
        return np.zeros(0, bool)  # no active model: a deviation the endpoint data will show
    run_inference(job.pk, worker="simulate_trial")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (InferenceJob.Status.SUCCEEDED, InferenceJob.Status.FAILED):
            break
        time.sleep(1)
    return read_mask(job.contour) if job.status == InferenceJob.Status.SUCCEEDED else np.zeros(0, bool)


def _delineate(patient, physician, start, truth, arm, rng) -> np.ndarray:
    start = start if start.size else np.zeros_like(truth)
    contour = physician_contour(start, truth, rng)
    session = delineation.open_session(actor=physician, patient=patient, user_agent="simulate_trial")
    median = 420.0 if start.any() else 600.0
    edited = int(np.count_nonzero((contour != start).any(axis=(1, 2))))
    delineation.record_events(actor=physician, session_id=session.pk, events=event_stream(rng, median, edited))
    halfway = np.where(rng.random(contour.shape[0])[:, None, None] < 0.5, contour, start)
    for base, labels in enumerate((halfway, contour)):  # two autosaves: halfway, then finished
        delineation.save_version(actor=physician, patient=patient, blob=encode(labels.astype(np.uint8)),
                                 base_version=base, save_id=str(uuid.uuid4()), session_id=session.pk)  # fmt: skip
    delineation.submit(actor=physician, patient=patient, password=demo_password(physician.username),
                       version_number=2)  # fmt: skip
    return contour


def _review(patient, submitted, truth, arm, rng) -> bool:
    """Every review the case needs (one, or two and the consensus), then the metrics."""
    case = ReviewCase.objects.filter(patient=patient).first()
    if case is None:
        return False
    approved = panel_contour(submitted, truth, rng)
    for _ in range(3):
        assignment = case.assignments.filter(approved_at__isnull=True, withdrawn_at__isnull=True).first()
        if assignment is None:
            break
        member = assignment.reviewer
        session = review.open_session(actor=member, assignment=assignment, user_agent="simulate_trial")
        edited = int(np.count_nonzero((approved != submitted).any(axis=(1, 2))))
        delineation.record_events(actor=member, session_id=session.pk, events=event_stream(rng, 180.0, edited))
        review.save(actor=member, assignment=assignment, blob=encode(approved.astype(np.uint8)), base_version=0,
                    save_id=str(uuid.uuid4()), session_id=session.pk)  # fmt: skip
        review.approve(actor=member, assignment=assignment, password=demo_password(member.username),
                       version_number=1)  # fmt: skip
        review.record_guess(actor=member, assignment=assignment, guess=guess(arm, rng))
    case.refresh_from_db()
    if case.approved_version_id is None:
        return False  # no panel member to review: the case waits (missing data, with its reason)
    measurements.measure(case.pk)  # what the Celery task does on approval (idempotent if it ran already)
    return True
