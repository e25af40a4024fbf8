"""The answer to a sign-in refused by login throttling (django-axes, AXES_LOCKOUT_CALLABLE): HTTP 429 that says
until when, as a page or, for API and script callers, as JSON."""

import math

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.db.models import Max
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

from .client_ip import client_ip


def locked_until(request, credentials=None):
    """The end of the cool-off: the last recorded failure of this username from this address, plus the cool-off."""
    username = get_client_username(request, credentials)
    address = getattr(request, "axes_ip_address", None) or client_ip(request)
    attempts = AccessAttempt.objects.filter(username=username, ip_address=address)
    last = attempts.aggregate(last=Max("attempt_time"))["last"] or timezone.now()
    return last + get_cool_off(request)


def lockout_message(until, what: str = "failed sign-ins for this account from your address") -> str:
    minutes = max(1, math.ceil((until - timezone.now()).total_seconds() / 60))
    return (
        f"Too many {what}. Try again after {until:%H:%M} UTC (in about {minutes} minute{'s' if minutes != 1 else ''}); "
        "until then even the right password is refused. "
        "If you have forgotten your password, ask your trial's administrator to reset it."
    )


def _wants_json(request) -> bool:
    accept = request.headers.get("Accept", "")
    return (
        request.path_info.startswith("/api/")
        or request.headers.get("X-Requested-With") == "XMLHttpRequest"
        or ("application/json" in accept and "text/html" not in accept)
    )


def lockout_response(request, original_response=None, credentials=None):
    until = locked_until(request, credentials)
    message = lockout_message(until)
    if _wants_json(request):
        body = {"detail": message, "code": "locked_out", "retry_after": until.isoformat()}
        response = JsonResponse(body, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(max(1, math.ceil((until - timezone.now()).total_seconds())))
    return response
