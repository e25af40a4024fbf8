"""Role checks for DRF views, answered on the server from the user's groups."""

from rest_framework.permissions import BasePermission

from trial.roles import Role, has_role


def role_required(*roles: Role, safe_roles: tuple[Role, ...] = ()):
    """Permission class: `roles` may do anything the view allows; `safe_roles` may only read."""

    class _HasRole(BasePermission):
        message = (
            "Your role may not use this endpoint (it needs: " + ", ".join(r.value for r in roles + safe_roles) + ")."
        )

        def has_permission(self, request, view):
            if has_role(request.user, *roles):
                return True
            return request.method in ("GET", "HEAD", "OPTIONS") and has_role(request.user, *safe_roles)

    _HasRole.__name__ = "Role_" + "_".join(r.value for r in roles)
    return _HasRole
