"""The five roles, as Django groups, and what each may see."""

from enum import StrEnum


class Role(StrEnum):
    COORDINATOR = "coordinator"
    PHYSICIAN = "physician"
    PANEL = "panel"
    STATISTICIAN = "statistician"
    DATA_MANAGER = "data_manager"


ROLE_LABELS = {
    Role.COORDINATOR: "Trial coordinator",
    Role.PHYSICIAN: "Radiation oncologist",
    Role.PANEL: "Expert panel member",
    Role.STATISTICIAN: "Statistician",
    Role.DATA_MANAGER: "Data manager",
}


def roles_of(user) -> frozenset[Role]:
    if user is None or not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_contourtrial_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = frozenset(role for role in Role if role.value in names)
        user._contourtrial_roles = cached
    return cached


def has_role(user, *roles: Role) -> bool:
    return bool(roles_of(user) & set(roles))


def is_blinded(user) -> bool:
    """Panel members are blinded to the arm, whatever other role they also hold."""
    return Role.PANEL in roles_of(user)
