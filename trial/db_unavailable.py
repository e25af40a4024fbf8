"""A request that finds the database gone (restart, failover, network) answers 503 with Retry-After, not a 500.

The browser's autosave retries 5xx answers with the same X-Save-Id and body, and the server finds a save it
has already committed by that id, so a restart costs the physician a short "retrying" and nothing else.
Only connection-level failures count: a deadlock, a lock timeout or a constraint error is a fault to look
into, and stays a 500.
"""

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.views import defaults

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
MESSAGE = (
    "The database is briefly unavailable (a restart or a network fault). Try again in a few seconds; "
    "the delineation workstation retries its saves by itself."
)
# SQLSTATE class 08 (connection exception) and the 57P0x shutdown codes: the server went away or is starting.
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def is_database_unavailable(exc: BaseException | None) -> bool:
    """True when `exc` (or what it wraps) says the database connection is gone or cannot be made."""
    if isinstance(exc, InterfaceError):  # Django: "connection already closed"
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__ or exc
    sqlstate = getattr(cause, "pgcode", None) or getattr(cause, "sqlstate", None)  # psycopg2 or psycopg 3
    if sqlstate is not None:
        return sqlstate.startswith(UNAVAILABLE_SQLSTATES)
    sqlite_error = getattr(cause, "sqlite_errorname", None)
    if sqlite_error is not None:  # the demo's SQLite: only a file locked by another writer
        return sqlite_error in {"SQLITE_BUSY", "SQLITE_LOCKED"}
    return True  # psycopg gives no SQLSTATE when the server never answered (refused, reset, closed)


def payload() -> dict:
    return {"detail": MESSAGE, "code": "database_unavailable", "retry_after": RETRY_AFTER_SECONDS}


def unavailable_response(request) -> HttpResponse:
    """JSON for the API and for callers that ask for JSON; a short page that reloads itself for people."""
    wants_json = request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")
    if wants_json:
        response = JsonResponse(payload(), status=503)
    else:
        response = HttpResponse(
            f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="{RETRY_AFTER_SECONDS}">'
            f"<title>Briefly unavailable</title><h1>Briefly unavailable</h1><p>{MESSAGE}</p>"
            "<p>This page reloads itself.</p>",
            status=503,
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def server_error(request):
    """handler500: Django calls it inside its exception handling, so the failure is still in sys.exc_info().

    This also covers failures outside views (middleware that reads the session or the user), which neither
    DRF's exception handler nor a middleware's process_exception ever sees."""
    exc = sys.exc_info()[1]
    if is_database_unavailable(exc):
        log.warning("database unavailable: answered 503 to %s %s (%s)", request.method, request.path, exc)
        return unavailable_response(request)
    return defaults.server_error(request)
