"""The staff covariates kept by data managers: years of head-and-neck contouring experience of each physician
(a covariate of delineation time in the endpoint data). Changes are audited with their reason."""

from django.contrib.auth import get_user_model
from django.db import transaction

from trial.audit.recorder import audit_context
from trial.models import StaffProfile
from trial.roles import Role

from .access import require_role
from .errors import InvalidInput

MAX_EXPERIENCE_YEARS = 60


def physicians():
    return get_user_model().objects.filter(groups__name=Role.PHYSICIAN.value).order_by("last_name", "username")


def experience_table() -> list[tuple]:
    """(physician, years or None) for every physician."""
    years = dict(StaffProfile.objects.values_list("user_id", "experience_years"))
    return [(user, years.get(user.pk)) for user in physicians()]


def set_experience(*, actor, user, years, reason: str) -> StaffProfile:
    require_role(actor, Role.DATA_MANAGER, action="record physicians' experience")
    if not physicians().filter(pk=user.pk).exists():
        raise InvalidInput(f"{user.get_username()} is not a physician; experience is recorded for physicians.")
    try:
        years = int(years)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"Experience must be a whole number of years, not {years!r}.") from exc
    if not 0 <= years <= MAX_EXPERIENCE_YEARS:
        raise InvalidInput(f"Experience must be between 0 and {MAX_EXPERIENCE_YEARS} years, not {years}.")
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise InvalidInput("Give the reason or source of the change (at least 5 characters).")
    with transaction.atomic(), audit_context(actor, reason=reason):
        profile = StaffProfile.objects.select_for_update().filter(user=user).first() or StaffProfile(user=user)
        if profile.experience_years == years:
            raise InvalidInput(f"{user.get_username()}'s experience is already {years} years; nothing to change.")
        profile.experience_years = years
        profile.save()
    return profile
