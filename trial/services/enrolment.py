"""Enrolment: a consented, eligible patient gets a trial number; strata are captured, not yet frozen."""

import datetime as dt

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from trial.audit.recorder import audit_context
from trial.eligibility import eligibility_problems
from trial.models import Consent, Patient, Site, Trial
from trial.randomisation import StratumError
from trial.roles import Role, has_role

from .access import require_coordinator_of
from .errors import Conflict, InvalidInput, NotAllowed, NotFound
from .hospital_ids import hospital_id_hash
from .trials import refuse_if_locked, require_unlocked


def patient_strata(trial: Trial, site: Site, strata: dict) -> dict:
    """The patient's levels for every factor, with the site factor taken from the enrolling site."""
    levels = {str(k): v for k, v in (strata or {}).items()}
    if any(f["name"] == "site" for f in trial.strata_factors):
        given = levels.get("site")
        if given not in (None, "", site.code):
            raise InvalidInput(f"The site stratum must be the enrolling site {site.code}, not {given!r}.")
        levels["site"] = site.code
    try:
        return trial.design().check_levels(levels)
    except StratumError as exc:
        raise InvalidInput(str(exc)) from exc


def _check_consent(trial: Trial, consent_date, form_version: str) -> None:
    if not consent_date or not form_version:
        raise InvalidInput("Consent is missing: record the date of written consent and the consent form version.")
    if not isinstance(consent_date, dt.date):
        raise InvalidInput(f"The consent date {consent_date!r} is not a date (use YYYY-MM-DD).")
    if consent_date > timezone.now().date():
        raise InvalidInput(f"The consent date {consent_date.isoformat()} lies in the future.")
    if form_version not in trial.consent_form_versions:
        raise InvalidInput(
            f"Consent form version {form_version!r} is not approved for this trial; "
            f"approved versions: {', '.join(trial.consent_form_versions)}."
        )


def _check_physician(physician, site: Site) -> None:
    if physician is None:
        raise InvalidInput("Assign the treating radiation oncologist (physician).")
    if not has_role(physician, Role.PHYSICIAN):
        raise InvalidInput(f"User {physician.get_username()!r} is not a physician in this trial.")
    if not physician.site_memberships.filter(site=site).exists():
        raise InvalidInput(f"Physician {physician.get_username()!r} does not work at site {site.code}.")


def enrol(
    *,
    actor,
    trial: Trial,
    site: Site,
    hospital_id: str,
    physician,
    eligibility: dict,
    consent_date,
    consent_form_version: str,
    strata: dict,
) -> Patient:
    require_coordinator_of(actor, site, action="enrol patients")
    if not trial.is_open:
        raise Conflict(f"Trial {trial.protocol_id} is closed to enrolment.")
    if not trial.sites.filter(pk=site.pk).exists():
        raise InvalidInput(f"Site {site.code} does not take part in trial {trial.protocol_id}.")
    id_hash = hospital_id_hash(hospital_id)
    _check_physician(physician, site)
    problems = eligibility_problems(trial.eligibility_criteria, eligibility or {})
    if problems:
        raise InvalidInput("The patient cannot be enrolled: " + " ".join(problems))
    _check_consent(trial, consent_date, consent_form_version)
    levels = patient_strata(trial, site, strata)

    with transaction.atomic(), audit_context(actor):
        # serialises trial numbers; NO KEY UPDATE leaves other changes' KEY SHARE on the row alone (trials.py)
        trial = Trial.objects.select_for_update(no_key=True).get(pk=trial.pk)
        refuse_if_locked(trial, "enrolling a patient")
        existing = Patient.objects.filter(trial=trial, hospital_id_hash=id_hash).first()
        if existing is not None:
            raise Conflict(
                f"This hospital id is already enrolled in the trial as {existing.trial_number} "
                f"(site {existing.site.code})."
            )
        number = Patient.objects.filter(trial=trial).count() + 1
        patient = Patient(
            trial=trial,
            trial_number=f"{trial.patient_prefix}-{number:04d}",
            site=site,
            hospital_id_hash=id_hash,
            physician=physician,
            strata=levels,
            eligibility=dict(eligibility),
            enrolled_by=actor,
        )
        patient.save()
        Consent(patient=patient, consent_date=consent_date, form_version=consent_form_version, recorded_by=actor).save()
    return patient


def find_by_hospital_id(*, actor, trial: Trial, hospital_id: str) -> Patient:
    """Look a patient up by hospital id; a coordinator only finds patients of their own sites."""
    if not has_role(actor, Role.COORDINATOR, Role.DATA_MANAGER):
        raise NotAllowed("Only a coordinator or data manager may look patients up by hospital id.")
    patient = Patient.objects.filter(trial=trial, hospital_id_hash=hospital_id_hash(hospital_id)).first()
    if patient is None:
        raise NotFound("No patient with this hospital id is enrolled in the trial.")
    if not has_role(actor, Role.DATA_MANAGER):
        require_coordinator_of(actor, patient.site, action="open this patient")
    return patient


def physicians_at(site: Site):
    return (
        get_user_model()
        .objects.filter(groups__name=Role.PHYSICIAN.value, site_memberships__site=site, is_active=True)
        .order_by("last_name", "username")
    )


def update_strata(*, actor, patient: Patient, strata: dict, reason: str) -> Patient:
    """Correct strata recorded at enrolment; after randomisation they are frozen (see corrections)."""
    require_coordinator_of(actor, patient.site, action=f"change {patient.trial_number}'s strata")
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise InvalidInput("Give the reason for changing the recorded strata (at least 10 characters).")
    with transaction.atomic(), audit_context(actor, reason=reason):
        require_unlocked(patient.trial_id, "changing strata")
        patient = Patient.objects.select_for_update().select_related("site", "trial").get(pk=patient.pk)
        if patient.status != Patient.Status.ENROLLED:
            raise Conflict(
                f"{patient.trial_number} is randomised: its strata are frozen. "
                "A data manager records a correction instead."
            )
        levels = patient_strata(patient.trial, patient.site, strata)
        if levels == patient.strata:
            raise InvalidInput(f"{patient.trial_number}'s strata are already {levels}; nothing to change.")
        patient.strata = levels
        patient.save()
    return patient
