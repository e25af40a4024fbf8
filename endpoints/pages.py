"""The one check in front of every endpoints page: the open trial, for users holding one of the page's roles,
never for the blinded panel whatever else they hold."""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from trial.roles import Role, has_role, is_blinded
from trial.services.errors import TrialError
from trial.services.trials import default_trial


def trial_for(user, *roles: Role):
    if is_blinded(user) or not has_role(user, *roles):
        names = " and ".join(role.value.replace("_", " ") + "s" for role in roles)
        raise PermissionDenied(f"This page is for {names} (never the blinded panel).")
    try:
        return default_trial()
    except TrialError as exc:
        raise Http404(exc.message) from exc
