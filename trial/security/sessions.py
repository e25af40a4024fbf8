"""Signed-in sessions end after SESSION_IDLE_TIMEOUT without a request, and SESSION_MAX_AGE after sign-in.

The idle limit is the session's own expiry (SESSION_COOKIE_AGE, in the database and on the cookie); activity
pushes it forward. Saving the session on every request (SESSION_SAVE_EVERY_REQUEST) would do that too, but it
writes the session row on every autosave and widens the window in which two parallel requests overwrite each
other's session data; here a request renews the expiry only when the last renewal is SESSION_RENEW_AFTER
seconds old, so the idle limit holds to within that many seconds.
"""

import time

from django.conf import settings
from django.contrib.auth import logout

SIGNED_IN_AT = "_signed_in_at"
RENEWED_AT = "_expiry_renewed_at"


class SessionTimeoutMiddleware:
    """After AuthenticationMiddleware: signs out a session past its absolute age, renews an active one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            self._check(request)
        return self.get_response(request)

    @staticmethod
    def _check(request) -> None:
        session, now = request.session, time.time()
        signed_in_at = session.setdefault(SIGNED_IN_AT, now)
        if now - signed_in_at > settings.SESSION_MAX_AGE:
            logout(request)  # flushes the session; the view then answers as to anyone signed out
            return
        if now - session.get(RENEWED_AT, 0) >= settings.SESSION_RENEW_AFTER:
            session[RENEWED_AT] = now  # a modified session is saved with a fresh expiry and cookie
