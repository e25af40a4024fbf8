"""Who may see and touch which patients. Every view and API call goes through these."""

from django.db.models import Q

from trial.models import Patient, Site
from trial.roles import Role, has_role, is_blinded, roles_of

from .errors import NotAllowed


def site_ids_of(user) -> set[int]:
    return set(user.site_memberships.values_list("site_id", flat=True))


def patients_visible_to(user):
    """Patients a user may see. Panel members see none: review cases reach them under codes only."""
    roles = roles_of(user)
    if not roles or is_blinded(user):
        return Patient.objects.none()
    if roles & {Role.DATA_MANAGER, Role.STATISTICIAN}:
        return Patient.objects.all()
    visible = Q(pk__in=[])
    if Role.COORDINATOR in roles:
        visible |= Q(site_id__in=site_ids_of(user))
    if Role.PHYSICIAN in roles:
        visible |= Q(physician=user)
    return Patient.objects.filter(visible)


def allocations_visible_to(user):
    """Randomised patients whose arm a user may see: data managers all; coordinators their sites'; physicians
    their own; statisticians only once the trial is unblinded after the lock (until then they work on A/B);
    blinded panel members none."""
    roles = roles_of(user)
    if not roles or is_blinded(user):
        return Patient.objects.none()
    randomised = Patient.objects.filter(status=Patient.Status.RANDOMISED)
    if Role.DATA_MANAGER in roles:
        return randomised
    visible = Q(pk__in=[])
    if Role.COORDINATOR in roles:
        visible |= Q(site_id__in=site_ids_of(user))
    if Role.PHYSICIAN in roles:
        visible |= Q(physician=user)
    if Role.STATISTICIAN in roles:
        visible |= Q(trial__arms_unblinded_at__isnull=False)
    return randomised.filter(visible)


def can_see_allocation(user, patient: Patient) -> bool:
    return allocations_visible_to(user).filter(pk=patient.pk).exists()


def require_role(user, *roles: Role, action: str) -> None:
    if not has_role(user, *roles):
        names = " or ".join(role.value.replace("_", " ") for role in roles)
        raise NotAllowed(f"Only a {names} may {action}.")


def require_coordinator_of(user, site: Site, action: str) -> None:
    require_role(user, Role.COORDINATOR, action=action)
    if site.pk not in site_ids_of(user):
        mine = ", ".join(sorted(Site.objects.filter(pk__in=site_ids_of(user)).values_list("code", flat=True))) or "none"
        raise NotAllowed(f"You coordinate site(s) {mine}, not {site.code}: you may not {action} there.")


def explain_refusal(user, patient: Patient):
    """Raise a 403 naming why `user` may not act on `patient` (called only when it is not visible)."""
    if has_role(user, Role.COORDINATOR):
        require_coordinator_of(user, patient.site, action=f"act on {patient.trial_number}")
    if has_role(user, Role.PHYSICIAN):
        raise NotAllowed(f"{patient.trial_number} is not assigned to you.")
    raise NotAllowed("Your role may not act on patients.")
