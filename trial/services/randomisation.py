"""Randomisation: the allocation is computed now, under a lock that serialises the trial's randomisations."""

from django.db import transaction

from trial.audit.recorder import audit_context
from trial.eligibility import eligibility_problems
from trial.models import Allocation, Consent, Patient, RandomisationSecret, Signature, Trial
from trial.randomisation import BalanceState, allocate
from trial.signals import patient_randomised

from .access import require_coordinator_of
from .errors import Conflict, InvalidInput
from .signatures import check_password, sign
from .trials import refuse_if_locked


def balance_state(trial: Trial) -> BalanceState:
    """Counts of all earlier allocations of the trial, by stratum and factor level, as randomised."""
    state = BalanceState()
    for row in Allocation.objects.filter(trial=trial).values("strata", "stratum_key", "arm"):
        state.record(row["strata"], row["stratum_key"], row["arm"])
    return state


def signed_content(patient: Patient) -> dict:
    """What the coordinator attests to; it cannot contain the arm, which is not known yet."""
    return {
        "patient": patient.trial_number,
        "site": patient.site.code,
        "strata": patient.strata,
        "eligibility": patient.eligibility,
        "consent_form_version": patient.consent.form_version,
        "consent_date": patient.consent.consent_date.isoformat(),
    }


def randomise(*, actor, patient: Patient, password: str) -> Allocation:
    require_coordinator_of(actor, patient.site, action="randomise patients")
    check_password(actor, password, Signature.Meaning.RANDOMISE)
    with transaction.atomic(), audit_context(actor):
        trial = Trial.objects.select_for_update(no_key=True).get(pk=patient.trial_id)  # see trials.require_unlocked
        refuse_if_locked(trial, "randomising a patient")
        patient = Patient.objects.select_for_update().select_related("site").get(pk=patient.pk)
        done = Allocation.objects.filter(patient=patient).first()
        if done is not None:
            raise Conflict(
                f"{patient.trial_number} was already randomised on {done.randomised_at:%Y-%m-%d %H:%M} UTC. "
                "Randomisation is irreversible; a wrong stratum is corrected by a data manager."
            )
        if not Consent.objects.filter(patient=patient).exists():
            raise InvalidInput(f"{patient.trial_number} has no consent record; record consent before randomising.")
        problems = eligibility_problems(trial.eligibility_criteria, patient.eligibility)
        if problems:
            raise InvalidInput(f"{patient.trial_number} is not eligible: " + " ".join(problems))
        if not trial.is_open:
            raise Conflict(f"Trial {trial.protocol_id} is closed to randomisation.")
        secret = RandomisationSecret.objects.get(trial=trial)
        state = balance_state(trial)
        decision = allocate(trial.design(secret.block_sizes or (2, 4, 6)), bytes(secret.seed), state, patient.strata)
        signature = sign(actor, Signature.Meaning.RANDOMISE, f"trial.patient:{patient.pk}", signed_content(patient))
        allocation = Allocation(
            patient=patient,
            trial=trial,
            sequence_number=state.total + 1,
            arm=decision.arm,
            method=trial.method,
            stratum_key=decision.stratum_key,
            stratum_position=decision.stratum_position,
            strata=patient.strata,
            randomised_by=actor,
            signature=signature,
        )
        allocation.save()
        patient.status = Patient.Status.RANDOMISED
        patient.save()
        transaction.on_commit(
            lambda: patient_randomised.send(sender=Allocation, patient=patient, allocation=allocation)
        )
    return allocation
