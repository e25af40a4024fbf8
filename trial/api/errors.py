"""Every API error is JSON with a `detail` a person can act on (and field errors kept under `errors`)."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from trial import db_unavailable
from trial.services.errors import TrialError


def _flatten(errors, prefix="") -> list[str]:
    if isinstance(errors, dict):
        return [
            msg
            for key, value in errors.items()
            for msg in _flatten(value, f"{prefix}{key}: " if key != "non_field_errors" else prefix)
        ]
    if isinstance(errors, list):
        return [msg for item in errors for msg in _flatten(item, prefix)]
    return [f"{prefix}{errors}"]


def exception_handler(exc, context):
    if isinstance(exc, TrialError):
        return Response({"detail": exc.message, "code": exc.code}, status=exc.status)
    if db_unavailable.is_database_unavailable(exc):  # a restart: the client retries (the autosave does)
        headers = {"Retry-After": str(db_unavailable.RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
        return Response(db_unavailable.payload(), status=503, headers=headers)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, Http404):
        response.data = {"detail": "Not found, or not visible to your role.", "code": "not_found"}
    elif isinstance(exc, PermissionDenied):
        response.data = {"detail": str(exc) or "Your role may not do this.", "code": "forbidden"}
    elif isinstance(response.data, dict) and "detail" not in response.data:
        response.data = {"detail": " ".join(_flatten(response.data)), "code": "invalid", "errors": response.data}
    elif isinstance(response.data, list):
        response.data = {"detail": " ".join(_flatten(response.data)), "code": "invalid"}
    return response
