"""Attributes audited changes made during a request to the signed-in user."""

from .recorder import audit_context


class AuditActorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        with audit_context(user if user is not None and user.is_authenticated else None):
            return self.get_response(request)
