"""Annotated correction of a wrong stratum after randomisation: the randomised value stays as it was."""

from django.db import transaction

from trial.audit.recorder import audit_context
from trial.models import Allocation, Patient, Signature, StratumCorrection
from trial.roles import Role

from .access import require_role
from .errors import Conflict, InvalidInput
from .signatures import check_password, sign
from .trials import require_unlocked

MIN_REASON_LENGTH = 10


def correct_stratum(
    *, actor, patient: Patient, factor: str, level: str, reason: str, password: str
) -> StratumCorrection:
    require_role(actor, Role.DATA_MANAGER, action="correct strata")
    allocation = Allocation.objects.filter(patient=patient).first()
    if allocation is None:
        raise Conflict(f"{patient.trial_number} is not randomised yet; strata are frozen only at randomisation.")
    design = patient.trial.design()
    if factor == "site":
        raise InvalidInput("The site stratum is the enrolling site and cannot be corrected.")
    names = design.factor_names
    if factor not in names:
        raise InvalidInput(f"Unknown stratification factor {factor!r}; the factors are {names}.")
    allowed = design.factor(factor).levels
    if level not in allowed:
        raise InvalidInput(f"{level!r} is not a level of {factor!r}; choose one of {list(allowed)}.")
    current = patient.effective_strata()[factor]
    if current == level:
        raise InvalidInput(f"{patient.trial_number}'s {factor} is already {level!r}; nothing to correct.")
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_LENGTH:
        raise InvalidInput(f"Give the reason for the correction (at least {MIN_REASON_LENGTH} characters).")
    check_password(actor, password, Signature.Meaning.CORRECT)
    with transaction.atomic(), audit_context(actor, reason=reason):
        require_unlocked(patient.trial_id, "correcting a stratum")
        signature = sign(
            actor,
            Signature.Meaning.CORRECT,
            f"trial.allocation:{allocation.pk}",
            {"patient": patient.trial_number, "factor": factor, "from": current, "to": level, "reason": reason},
        )
        correction = StratumCorrection(
            allocation=allocation,
            factor=factor,
            original_level=current,
            corrected_level=level,
            reason=reason,
            corrected_by=actor,
            signature=signature,
        )
        correction.save()
    return correction
