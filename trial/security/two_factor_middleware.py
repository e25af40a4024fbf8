"""Refuses everything to a signed-in user who must use a second factor until a code is verified in this session.

Pages redirect to enrolment (no authenticator yet) or verification; API calls get a 403 JSON naming the page.
Sign-in, sign-out and the two pages themselves stay reachable; static files are served before this runs
(whitenoise) and are let through here too. Installed after django_otp's OTPMiddleware, which gives
`request.user.is_verified()`. The API authenticates by session only (settings.REST_FRAMEWORK), so the session
user seen here is the API's user too; password-only Basic authentication would bypass this check.
"""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from . import two_factor

API_PREFIX = "/api/"


class TwoFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self._open_paths = None

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is None or self._is_open(request.path) or not user.is_authenticated:
            return self.get_response(request)
        if not _is_verified(user) and two_factor.must_verify(user):
            return self._refuse(request, user)
        return self.get_response(request)

    def _is_open(self, path: str) -> bool:
        """`path` is request.path: like reverse(), it includes the script prefix of a sub-path deployment."""
        if self._open_paths is None:
            names = ("login", "logout", "two-factor-enrol", "two-factor-verify")
            self._open_paths = frozenset(reverse(name) for name in names)
        return path in self._open_paths or path.startswith(settings.STATIC_URL)

    def _refuse(self, request, user):
        enrolled = two_factor.confirmed_device(user) is not None
        page = reverse("two-factor-verify" if enrolled else "two-factor-enrol")
        if request.path_info.startswith(API_PREFIX) and "text/html" not in request.headers.get("Accept", ""):
            step = "enter the code from your authenticator app" if enrolled else "set up an authenticator app"
            return _json_refusal(f"Your account must use two-factor authentication: {step} at {page}, then try again.")
        return redirect(f"{page}?{urlencode({'next': request.get_full_path()})}")


def _is_verified(user) -> bool:
    is_verified = getattr(user, "is_verified", None)  # installed by django_otp's OTPMiddleware
    return bool(is_verified and is_verified())


def _json_refusal(message: str) -> JsonResponse:
    return JsonResponse({"detail": message, "code": "two_factor_required"}, status=403)
