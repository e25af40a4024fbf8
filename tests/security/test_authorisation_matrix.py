"""Acceptance (issue 8, security): every URL pattern of the project × every role, with the status each role gets.

MATRIX below is the authorisation policy, one row per (method, route): who may do what. The routes are taken
from django.urls.get_resolver(), so a view cannot be added without deciding here who may reach it (the
coverage test fails on a route without a row, and on a row without a route).

The objects behind the parameters are real (matrix_world.py). Columns:
  anon            not signed in
  coord_site      coordinator of the target patient's site       coord_other   coordinator of another site
  phys_owner      the patient's physician (owns the case)         phys_other    a physician not owning it
  panel_assigned  panel member assigned to the review case        panel_other   a panel member not assigned
  statistician    blinded statistician                            data_manager  data manager
Cells: the HTTP status; `L` is a redirect to the login page; `*` marks the only requests that may change the
database (logging out, opening a timed session, queueing an audit verification, an audited export or UID-map
read, a refused signature recorded). Every other request, allowed or refused, must leave it unchanged. Unsafe
requests carry a harmless, invalid body (empty JSON or form, an empty labelmap), so an entitled role answers
400/409 (pages: their form again, or a redirect with the message), and a refused one 403/404/405.

Conventions the matrix asserts:
- Pages send anonymous users to the login page; the API answers them 403 (session auth, no Basic challenge).
- A role that may not use a view at all gets 403 (role check first). A patient, series, job or session outside
  a role's reach is "not found" (404) when read, and when acted on through a page; the patients API answers an
  action on such a patient 403 with the reason (explain_refusal), before looking at the body. Delineation, API
  and workstation page, answers 403 "… is not assigned to you" for another physician's case, as
  docs/DELINEATION.md documents (the only place a guessed id is confirmed to exist; nothing of it is shown).
- Panel members reach cases only by their code; another member's code answers exactly like a code that does not
  exist (404), and no patient id reaches them.
- No role gets a 2xx on a neighbouring or another patient's id that its column does not allow (guessing test);
  the DRF format suffixes (`.json`) do not widen access; PUT/PATCH/DELETE are refused everywhere; no 500s.
"""

import logging
import re
import time
import uuid

import pytest
from django.conf import settings
from django.db import transaction
from django.shortcuts import resolve_url
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver

from config.celery import app as celery_app
from panel_review.models import ReviewCase

from . import matrix_world
from .matrix_world import ROLES, candidates, relation, snapshot, snapshot_sql

pytestmark = pytest.mark.django_db

# fmt: off
MATRIX = """
method route                                                       anon coS  coO  phO  phX  paA  paX  sta  dm
# --- accounts, home, API root and schema -------------------------------------------------------------------------
GET    /                                                           L    200  200  200  200  200  200  200  200
GET    /accounts/login/                                            200  200  200  200  200  200  200  200  200
POST   /accounts/login/                                            200  200  200  200  200  200  200  200  200
GET    /accounts/logout/                                           405  405  405  405  405  405  405  405  405
POST   /accounts/logout/                                           302  302* 302* 302* 302* 302* 302* 302* 302*
GET    /accounts/two-factor/                                       L    200  200  200  200  200  200  200  200
GET    /accounts/two-factor/enrol/                                 L    200  200  200  200  200  200  200  200
POST   /accounts/two-factor/enrol/                                 L    200  200  200  200  200  200  200  200
GET    /accounts/two-factor/manage/                                L    403  403  403  403  403  403  403  200
POST   /accounts/two-factor/manage/                                L    403  403  403  403  403  403  403  404
GET    /accounts/two-factor/remove/                                L    405  405  405  405  405  405  405  405
POST   /accounts/two-factor/remove/                                L    302  302  302  302  302  302  302  302
GET    /accounts/two-factor/reset/                                 L    405  405  405  405  405  405  405  405
POST   /accounts/two-factor/reset/                                 L    403  403  403  403  403  403  403  404
GET    /accounts/two-factor/verify/                                L    302  302  302  302  302  302  302  302
POST   /accounts/two-factor/verify/                                L    302  302  302  302  302  302  302  302
GET    /api/docs/                                                  403  200  200  200  200  200  200  200  200
GET    /api/schema/                                                403  200  200  200  200  200  200  200  200
GET    /api/v1/                                                    403  200  200  200  200  200  200  200  200
GET    /api/v1/delineation/                                        403  200  200  200  200  200  200  200  200
GET    /api/v1/imaging/                                            403  200  200  200  200  200  200  200  200
GET    /api/v1/inference/                                          403  200  200  200  200  200  200  200  200
GET    /api/v1/me/                                                 403  200  200  200  200  200  200  200  200
GET    /api/v1/review/                                             403  200  200  200  200  200  200  200  200
# --- trial: design, sites, patients (API) ------------------------------------------------------------------------
GET    /api/v1/patients/                                           403  200  200  200  200  403  403  200  200
POST   /api/v1/patients/                                           403  400  400  403  403  403  403  403  400
GET    /api/v1/patients/lookup/                                    403  405  405  403  403  403  403  403  405
POST   /api/v1/patients/lookup/                                    403  400  400  403  403  403  403  403  400
GET    /api/v1/patients/{pk}/                                      403  200  404  200  404  403  403  200  200
GET    /api/v1/patients/{pk}/randomise/                            403  405  405  403  403  403  403  403  403
POST   /api/v1/patients/{pk}/randomise/                            403  400  403  403  403  403  403  403  403
GET    /api/v1/patients/{pk}/strata-corrections/                   403  403  403  403  403  403  403  403  405
POST   /api/v1/patients/{pk}/strata-corrections/                   403  403  403  403  403  403  403  403  400
GET    /api/v1/patients/{pk}/strata/                               403  405  405  403  403  403  403  403  403
POST   /api/v1/patients/{pk}/strata/                               403  400  403  403  403  403  403  403  403
GET    /api/v1/sites/                                              403  200  200  200  200  200  200  200  200
GET    /api/v1/sites/{pk}/                                         403  200  200  200  200  200  200  200  200
GET    /api/v1/sites/{pk}/physicians/                              403  200  200  403  403  403  403  403  200
GET    /api/v1/trials/                                             403  200  200  200  200  200  200  200  200
GET    /api/v1/trials/{pk}/                                        403  200  200  200  200  200  200  200  200
# --- trial: pages ------------------------------------------------------------------------------------------------
GET    /patients/                                                  L    200  200  200  200  403  403  200  200
GET    /patients/enrol/                                            L    200  200  403  403  403  403  403  403
POST   /patients/enrol/                                            L    200  200  403  403  403  403  403  403
GET    /patients/lookup/                                           L    200  200  403  403  403  403  403  200
POST   /patients/lookup/                                           L    200  200  403  403  403  403  403  200
GET    /patients/{pk}/                                             L    200  404  200  404  403  403  200  200
GET    /patients/{pk}/correct/                                     L    405  405  405  405  405  405  405  405
POST   /patients/{pk}/correct/                                     L    403  403  403  403  403  403  403  302
GET    /patients/{pk}/randomise/                                   L    405  405  405  405  405  405  405  405
POST   /patients/{pk}/randomise/                                   L    302  404  403  403  403  403  403  403
GET    /patients/{pk}/strata/                                      L    405  405  405  405  405  405  405  405
POST   /patients/{pk}/strata/                                      L    302  404  403  403  403  403  403  403
GET    /staff/experience/                                          L    403  403  403  403  403  403  403  200
POST   /staff/experience/                                          L    403  403  403  403  403  403  403  404
# --- audit -------------------------------------------------------------------------------------------------------
GET    /api/v1/audit/entries/                                      403  403  403  403  403  403  403  200  200
GET    /api/v1/audit/entries/{pk}/                                 403  403  403  403  403  403  403  404  200
GET    /api/v1/audit/verifications/                                403  403  403  403  403  403  403  403  200
POST   /api/v1/audit/verifications/                                403  403  403  403  403  403  403  403  202*
GET    /api/v1/audit/verifications/{pk}/                           403  403  403  403  403  403  403  403  200
GET    /audit/                                                     L    403  403  403  403  403  403  200  200
GET    /audit/verify/                                              L    405  405  405  405  405  405  405  405
POST   /audit/verify/                                              L    403  403  403  403  403  403  403  302*
# --- imaging -----------------------------------------------------------------------------------------------------
GET    /api/v1/imaging/instances/{pk}/                             403  200  404  200  404  404  404  404  200
GET    /api/v1/imaging/instances/{pk}/dicom/                       403  200  404  200  404  404  404  404  200
GET    /api/v1/imaging/quarantine/                                 403  200  200  403  403  403  403  403  200
GET    /api/v1/imaging/quarantine/{pk}/                            403  200  200  403  403  403  403  403  200
GET    /api/v1/imaging/quarantine/{pk}/assign/                     403  405  405  403  403  403  403  403  405
POST   /api/v1/imaging/quarantine/{pk}/assign/                     403  400  400  403  403  403  403  403  400
GET    /api/v1/imaging/quarantine/{pk}/discard/                    403  405  405  403  403  403  403  403  405
POST   /api/v1/imaging/quarantine/{pk}/discard/                    403  400  400  403  403  403  403  403  400
GET    /api/v1/imaging/series/                                     403  200  200  200  200  200  200  200  200
GET    /api/v1/imaging/series/{pk}/                                403  200  404  200  404  404  404  404  200
GET    /api/v1/imaging/uid-map/                                    403  403  403  403  403  403  403  403  200*
GET    /api/v1/imaging/uploads/                                    403  405  405  403  403  403  403  403  405
POST   /api/v1/imaging/uploads/                                    403  400  400  403  403  403  403  403  400
GET    /imaging/                                                   L    200  200  200  200  403  403  403  200
GET    /imaging/patients/{pk}/                                     L    200  404  200  404  403  403  403  200
GET    /imaging/quarantine/                                        L    200  200  403  403  403  403  403  200
GET    /imaging/quarantine/{pk}/assign/                            L    405  405  405  405  405  405  405  405
POST   /imaging/quarantine/{pk}/assign/                            L    404  404  403  403  403  403  403  404
GET    /imaging/quarantine/{pk}/discard/                           L    405  405  405  405  405  405  405  405
POST   /imaging/quarantine/{pk}/discard/                           L    302  302  403  403  403  403  403  302
# --- inference (AI proposals reveal the arm) ---------------------------------------------------------------------
GET    /api/v1/inference/contours/                                 403  200  200  200  200  200  200  200  200
GET    /api/v1/inference/contours/{pk}/                            403  200  404  200  404  404  404  404  200
GET    /api/v1/inference/contours/{pk}/seg/                        403  200  404  200  404  404  404  404  200
GET    /api/v1/inference/contours/{pk}/volume/                     403  200  404  200  404  404  404  404  200
GET    /api/v1/inference/jobs/                                     403  200  200  200  200  200  200  200  200
GET    /api/v1/inference/jobs/rerun/                               403  403  403  403  403  403  403  403  405
POST   /api/v1/inference/jobs/rerun/                               403  403  403  403  403  403  403  403  400
GET    /api/v1/inference/jobs/{pk}/                                403  200  404  200  404  404  404  404  200
GET    /api/v1/inference/models/                                   403  403  403  403  403  403  403  403  200
GET    /api/v1/inference/models/{pk}/                              403  403  403  403  403  403  403  403  200
GET    /inference/models/                                          L    403  403  403  403  403  403  403  200
GET    /inference/patients/{pk}/                                   L    200  404  200  404  404  404  403  200
GET    /inference/patients/{pk}/rerun/                             L    405  405  405  405  405  405  405  405
POST   /inference/patients/{pk}/rerun/                             L    403  403  403  403  403  403  403  302
# --- delineation (the physician's own cases) ---------------------------------------------------------------------
GET    /api/v1/delineation/cases/                                  403  403  403  200  200  403  403  403  403
GET    /api/v1/delineation/cases/{pk}/                             403  403  403  200  403  403  403  403  403
GET    /api/v1/delineation/cases/{pk}/interpolate/                 403  405  405  405  405  405  405  405  405
POST   /api/v1/delineation/cases/{pk}/interpolate/                 403  403  403  400  403  403  403  403  403
GET    /api/v1/delineation/cases/{pk}/labelmap/                    403  403  403  200  403  403  403  403  403
GET    /api/v1/delineation/cases/{pk}/proposal/labelmap/           403  403  403  200  403  403  403  403  403
GET    /api/v1/delineation/cases/{pk}/proposal/uncertainty/        403  403  403  200  403  403  403  403  403
GET    /api/v1/delineation/cases/{pk}/sessions/                    403  405  405  405  405  405  405  405  405
POST   /api/v1/delineation/cases/{pk}/sessions/                    403  403  403  201* 403  403  403  403  403
GET    /api/v1/delineation/cases/{pk}/submit/                      403  405  405  405  405  405  405  405  405
POST   /api/v1/delineation/cases/{pk}/submit/                      403  403  403  400  403  403  403  403  403
GET    /api/v1/delineation/cases/{pk}/timing/                      403  403  403  200  403  403  403  403  403
GET    /api/v1/delineation/cases/{pk}/versions/                    403  403  403  200  403  403  403  403  403
POST   /api/v1/delineation/cases/{pk}/versions/                    403  403  403  400  403  403  403  403  403
GET    /api/v1/delineation/sessions/{pk}/events/                   403  405  405  405  405  405  405  405  405
POST   /api/v1/delineation/sessions/{pk}/events/                   403  404  404  400  404  404  404  404  404
GET    /delineation/                                               L    403  403  200  200  403  403  403  403
GET    /delineation/cases/{pk}/                                    L    403  403  200  403  403  403  403  403
# --- panel review (blinded: by code only) ------------------------------------------------------------------------
GET    /api/v1/review/approved/{pk}/rtstruct/                      403  403  403  403  403  403  403  403  409
GET    /api/v1/review/approved/{pk}/send/                          403  403  403  403  403  403  403  403  405
POST   /api/v1/review/approved/{pk}/send/                          403  403  403  403  403  403  403  403  409
GET    /api/v1/review/cases/                                       403  403  403  403  403  200  200  403  403
GET    /api/v1/review/cases/{code}/                                403  403  403  403  403  200  404  403  403
GET    /api/v1/review/cases/{code}/approve/                        403  405  405  405  405  405  405  405  405
POST   /api/v1/review/cases/{code}/approve/                        403  403  403  403  403  400  404  403  403
GET    /api/v1/review/cases/{code}/guess/                          403  405  405  405  405  405  405  405  405
POST   /api/v1/review/cases/{code}/guess/                          403  403  403  403  403  400  404  403  403
GET    /api/v1/review/cases/{code}/images/{kind}/{index}/          403  403  403  403  403  200  404  403  403
GET    /api/v1/review/cases/{code}/interpolate/                    403  405  405  405  405  405  405  405  405
POST   /api/v1/review/cases/{code}/interpolate/                    403  403  403  403  403  400  404  403  403
GET    /api/v1/review/cases/{code}/labelmap/                       403  403  403  403  403  200  404  403  403
GET    /api/v1/review/cases/{code}/sessions/                       403  405  405  405  405  405  405  405  405
POST   /api/v1/review/cases/{code}/sessions/                       403  403  403  403  403  201* 404  403  403
GET    /api/v1/review/cases/{code}/start/                          403  403  403  403  403  200  404  403  403
GET    /api/v1/review/cases/{code}/versions/                       403  405  405  405  405  405  405  405  405
POST   /api/v1/review/cases/{code}/versions/                       403  403  403  403  403  400  404  403  403
GET    /api/v1/review/sessions/{pk}/events/                        403  405  405  405  405  405  405  405  405
POST   /api/v1/review/sessions/{pk}/events/                        403  403  403  403  403  400  404  403  403
GET    /review/                                                    L    403  403  403  403  200  200  403  403
GET    /review/assignments/{pk}/reassign/                          L    405  405  405  405  405  405  405  405
POST   /review/assignments/{pk}/reassign/                          L    403  403  403  403  403  403  403  302
GET    /review/cases/{code}/                                       L    403  403  403  403  200  404  403  403
# --- endpoints, exports and dashboards ---------------------------------------------------------------------------
GET    /dashboards/coordinator/                                    L    200  200  403  403  403  403  403  200
GET    /dashboards/data-manager/                                   L    403  403  403  403  403  403  403  200
GET    /endpoints/                                                 L    403  403  403  403  403  403  200  200
GET    /endpoints/download/{what}/{fmt}/                           L    403  403  403  403  403  403  200* 200*
GET    /endpoints/lock/                                            L    405  405  405  405  405  405  405  405
POST   /endpoints/lock/                                            L    403  403  403  403  403  403  403  302*
GET    /endpoints/unblind/                                         L    405  405  405  405  405  405  405  405
POST   /endpoints/unblind/                                         L    403  403  403  403  403  403  403  302
"""
# fmt: on

COLUMNS = ROLES
LOGIN = "L"
FILL = {"{kind}": "ct", "{index}": "0", "{what}": "endpoints", "{fmt}": "csv"}
# Query strings without which an entitled role gets a 400/404 for the missing parameter, not the content.
QUERY = {"/api/v1/imaging/uid-map/": "?patient={patient}", "/api/v1/inference/contours/{pk}/volume/": "?kind=mask"}
# Routes whose answer takes long to build (schema generation, exports): no HEAD twin.
SLOW = {"/api/schema/", "/endpoints/download/{what}/{fmt}/"}
# Which object a route's {pk} names, by the route's prefix (longest prefix wins).
PK_KINDS = {
    "/api/v1/patients/": "patient",
    "/patients/": "patient",
    "/imaging/patients/": "patient",
    "/inference/patients/": "patient",
    "/api/v1/delineation/cases/": "patient",
    "/delineation/cases/": "patient",
    "/api/v1/review/approved/": "patient",
    "/api/v1/imaging/series/": "series",
    "/api/v1/imaging/instances/": "instance",
    "/api/v1/imaging/quarantine/": "quarantine",
    "/imaging/quarantine/": "quarantine",
    "/api/v1/inference/jobs/": "job",
    "/api/v1/inference/contours/": "contour",
    "/api/v1/inference/models/": "model",
    "/api/v1/delineation/sessions/": "delineation_session",
    "/api/v1/review/sessions/": "review_session",
    "/review/assignments/": "assignment",
    "/api/v1/audit/entries/": "audit_entry",
    "/api/v1/audit/verifications/": "verification",
    "/api/v1/trials/": "trial",
    "/api/v1/sites/": "site",
}
# List endpoints and the detail route that decides whether a role may see each listed object.
LISTS = {
    "/api/v1/patients/": ("/api/v1/patients/{pk}/", "patient", "id"),
    "/api/v1/imaging/series/": ("/api/v1/imaging/series/{pk}/", "series", "id"),
    "/api/v1/inference/jobs/": ("/api/v1/inference/jobs/{pk}/", "job", "id"),
    "/api/v1/inference/contours/": ("/api/v1/inference/contours/{pk}/", "contour", "id"),
    "/api/v1/delineation/cases/": ("/api/v1/delineation/cases/{pk}/", "patient", "id"),
    "/api/v1/review/cases/": ("/api/v1/review/cases/{code}/", "code", "code"),
}


def parse_matrix(text: str) -> dict:
    """{(method, route): {role: (expected status or LOGIN, may write)}} from the table above."""
    rows = {}
    for line in text.strip().splitlines()[1:]:
        if not line.strip() or line.startswith("#"):
            continue
        method, route, *cells = line.split()
        assert len(cells) == len(COLUMNS), f"{method} {route}: {len(cells)} cells for {len(COLUMNS)} roles"
        assert (method, route) not in rows, f"{method} {route} is in the matrix twice"
        rows[method, route] = {
            role: (cell.rstrip("*") if cell == LOGIN else int(cell.rstrip("*")), cell.endswith("*"))
            for role, cell in zip(COLUMNS, cells, strict=True)
        }
    return rows


EXPECTED = parse_matrix(MATRIX)


def allowed(method: str, route: str, column: str) -> bool:
    status = EXPECTED[method, route][column][0]
    return status != LOGIN and 200 <= status < 300


# --- the routes -------------------------------------------------------------------------------------------------


def _walk(patterns, prefix=""):
    for pattern in patterns:
        text = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, text)
        elif isinstance(pattern, URLPattern):
            yield text, pattern


def _plain(regex_or_route: str) -> str:
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", regex_or_route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    return "/" + route.replace("^", "").replace("$", "").replace("\\", "")


def _is_suffix(pattern) -> bool:
    return "format" in pattern.pattern.regex.groupindex


def project_routes() -> dict:
    """{route: pattern} for every URL pattern except the admin's (one rule) and the DRF format suffixes (one
    rule: a suffix must not widen access)."""
    routes = {}
    for text, pattern in _walk(get_resolver().url_patterns):
        if not text.startswith("admin/") and not _is_suffix(pattern):
            routes.setdefault(_plain(text), pattern)
    return routes


def admin_routes() -> list[str]:
    return sorted({_plain(text) for text, _ in _walk(get_resolver().url_patterns) if text.startswith("admin/")})


def kind_of(route: str) -> str | None:
    if "{code}" in route:
        return "code"
    if "{pk}" not in route:
        return None
    prefix = max((p for p in PK_KINDS if route.startswith(p)), key=len, default=None)
    return PK_KINDS[prefix] if prefix else None


def url_for(route: str, world, obj=None) -> str:
    kind = kind_of(route)
    obj = obj if obj is not None else (world.targets[kind] if kind else None)
    url = route
    if kind == "code":
        url = url.replace("{code}", obj.code if isinstance(obj, ReviewCase) else obj)
    elif kind is not None:
        url = url.replace("{pk}", str(obj.pk if hasattr(obj, "pk") else obj))
    for hole, value in FILL.items():
        url = url.replace(hole, value)
    assert "{" not in url, f"{route}: a parameter the matrix cannot fill"
    return url + QUERY.get(route, "").format(patient=world.targets["patient"].pk)


# --- requests ---------------------------------------------------------------------------------------------------


def send(client, method: str, url: str):
    """`method` on `url` with a harmless body: nothing a view could act on."""
    if method in ("GET", "HEAD"):
        return getattr(client, method.lower())(url)
    path = url.split("?")[0]
    if path.endswith(("/versions/", "/interpolate/")):  # the labelmap endpoints: an empty labelmap
        return client.generic(method, url, b"", content_type="application/vnd.contourtrial.labelmap",
                              HTTP_X_BASE_VERSION="0", HTTP_X_SAVE_ID=str(uuid.uuid4()))  # fmt: skip
    if path.endswith("/uploads/"):
        return getattr(client, method.lower())(url, {}, format="multipart")
    if url.startswith("/api/"):
        return getattr(client, method.lower())(url, {}, format="json")
    return getattr(client, method.lower())(url, {})


class Crawl:
    """Sends each request inside a savepoint that is rolled back, and collects every departure from the matrix
    (all of them, so one run shows the whole picture)."""

    def __init__(self, world):
        self.world, self.sql, self.requests, self.problems = world, snapshot_sql(), 0, []
        self.started = time.monotonic()

    def request(self, role: str, method: str, url: str, client=None):
        client = client or self.world.client(role, fresh=url == "/accounts/logout/")
        with transaction.atomic():
            before = snapshot(self.sql)
            response = send(client, method, url)
            after = snapshot(self.sql)
            transaction.set_rollback(True)
        self.requests += 1
        response.changed_db = before != after
        if response.status_code >= 500:
            self.problems.append(f"{method} {url} as {role}: {response.status_code} (a server error)")
        return response

    def check(self, role, method, url, expected, response):
        status, (want, may_write) = response.status_code, expected
        if want == LOGIN:
            ok = status == 302 and response["Location"].startswith(resolve_url(settings.LOGIN_URL) + "?next=")
        else:
            ok = status == want
        if not ok:
            where = f" → {response['Location']}" if status in (301, 302) else ""
            self.problems.append(f"{method} {url} as {role}: expected {want}, got {status}{where}")
        if response.changed_db and not may_write:
            self.problems.append(f"{method} {url} as {role}: {status}, and the database changed")

    def refused(self, role, method, url, response, why: str):
        status = response.status_code
        if 200 <= status < 300:
            self.problems.append(f"{method} {url} as {role}: {status} — {why}")
        if response.changed_db:
            self.problems.append(f"{method} {url} as {role}: {status}, and the database changed — {why}")

    def report(self, title: str):
        print(f"\n{title}: {self.requests} requests in {time.monotonic() - self.started:.1f} s")
        assert not self.problems, f"{title}: {len(self.problems)} problem(s)\n" + "\n".join(self.problems)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """The world, built once; every test runs in its own savepoint inside the module's transaction."""
    folder = tmp_path_factory.mktemp("matrix")
    overrides = override_settings(
        MEDIA_ROOT=folder / "media",
        MODEL_ROOT=folder / "models",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )
    started = time.monotonic()
    with django_db_blocker.unblock(), overrides, transaction.atomic():
        celery_app.conf.task_always_eager = True
        try:
            world = matrix_world.build(folder)
            print(f"\nauthorisation matrix world built in {time.monotonic() - started:.1f} s")
            logging.disable(logging.WARNING)  # thousands of refusals are expected; django.request logs each
            yield world
        finally:
            logging.disable(logging.NOTSET)
            celery_app.conf.task_always_eager = False
            transaction.set_rollback(True)


# --- the tests --------------------------------------------------------------------------------------------------


def test_every_route_has_a_row_and_every_row_a_route():
    routes = project_routes()
    declared = {route for _method, route in EXPECTED}
    missing = sorted(set(routes) - declared)
    stale = sorted(declared - set(routes))
    assert not missing, "routes nobody decided who may reach (add rows to MATRIX):\n" + "\n".join(missing)
    assert not stale, "rows for routes that no longer exist:\n" + "\n".join(stale)
    no_get = sorted(route for route in routes if ("GET", route) not in EXPECTED)
    assert not no_get, "every route needs a GET row (405 where GET is not allowed):\n" + "\n".join(no_get)
    unsafe = sorted(
        f"{method.upper()} {route}"
        for route, pattern in routes.items()
        for method in getattr(pattern.callback, "actions", {})
        # DRF adds "head" to a viewset's actions at its first GET (order-dependent), and HEAD is safe anyway
        if method not in ("get", "head", "options") and (method.upper(), route) not in EXPECTED
    )
    assert not unsafe, "API actions with no row for their unsafe method:\n" + "\n".join(unsafe)
    no_kind = sorted(r for r in routes if ("{pk}" in r or "{code}" in r) and kind_of(r) is None)
    assert not no_kind, "routes whose id parameter has no kind in PK_KINDS:\n" + "\n".join(no_kind)


def test_every_role_gets_what_the_matrix_says(world):
    crawl = Crawl(world)
    for (method, route), expected in EXPECTED.items():
        url = url_for(route, world)
        for role in ROLES:
            response = crawl.request(role, method, url)
            crawl.check(role, method, url, expected[role], response)
            if method == "GET" and allowed(method, route, role) and route not in SLOW:  # HEAD answers as GET
                head = crawl.request(role, "HEAD", url)
                if head.status_code not in (response.status_code, 405):  # a view may refuse HEAD, not misread it
                    crawl.problems.append(f"HEAD {url} as {role}: {head.status_code}, GET {response.status_code}")
    crawl.report(f"matrix: {len(EXPECTED)} rows × {len(ROLES)} roles")


def test_methods_without_a_row_are_refused_and_write_nothing(world):
    """POST where the matrix has no POST row, and PUT/PATCH/DELETE everywhere: never a write, never more than
    GET gives (a page that renders the same for POST is harmless), never a 2xx from the API."""
    crawl = Crawl(world)
    for route in project_routes():
        url = url_for(route, world)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            if (method, route) in EXPECTED:
                continue
            # PUT/PATCH/DELETE: every role that may GET the route (the others are refused before the method
            # is looked at) and anonymous users
            roles = ROLES if method == "POST" else [r for r in ROLES if r == "anon" or allowed("GET", route, r)]
            for role in roles:
                response = crawl.request(role, method, url)
                if route.startswith("/api/") or not allowed("GET", route, role):
                    crawl.refused(role, method, url, response, f"no {method} row in the matrix")
                elif response.changed_db:
                    crawl.problems.append(f"{method} {url} as {role}: the database changed")
    crawl.report("methods without a row")


def _representatives(world, kind: str, route: str) -> list:
    """The objects to guess at: the target's neighbours by id and one object of each kind of relation to the
    roles (two objects every role relates to alike would give the same answers)."""
    target = world.targets[kind]
    seen, out = set(), []
    for obj in candidates(kind, target):
        if obj is None:
            continue
        signature = tuple(relation(world, role, obj) for role in ROLES)
        key = getattr(obj, "pk", None)
        neighbour = kind not in ("code",) and key is not None and abs(key - target.pk) == 1
        if signature not in seen or neighbour:
            seen.add(signature)
            out.append(obj)
    return out


def test_no_object_is_reachable_by_guessing_ids(world):
    """Every route with an id or code, every role, every other object of the kind (and ids and codes that do
    not exist): a 2xx only where the role's relation to that object is allowed by the matrix."""
    crawl = Crawl(world)
    for (method, route), _expected in EXPECTED.items():
        kind = kind_of(route)
        if kind is None:
            continue
        target = world.targets[kind]
        others = _representatives(world, kind, route)
        ghost = (target.code[:-1] + ("A" if target.code[-1] != "A" else "B")) if kind == "code" \
            else type(target).objects.order_by("-pk").first().pk + 1  # a neighbour that does not exist  # fmt: skip
        for role in ROLES[1:]:  # anonymous users are refused before any object is looked up (the matrix shows it)
            for obj in others:
                column = relation(world, role, obj)
                if allowed(method, route, column):
                    continue
                url = url_for(route, world, obj)
                crawl.refused(role, method, url, crawl.request(role, method, url),
                              f"{role} is {column} here, which the matrix refuses")  # fmt: skip
            url = url_for(route, world, ghost)
            crawl.refused(role, method, url, crawl.request(role, method, url), "no such object")
    crawl.report("guessing ids")


def test_lists_show_only_what_the_details_allow(world):
    crawl = Crawl(world)
    for list_route, (detail_route, kind, key) in LISTS.items():
        for role in ROLES:
            response = crawl.request(role, "GET", list_route)
            if response.status_code != 200:
                continue
            data = response.json()
            items = data["results"] if isinstance(data, dict) else data
            model = type(world.targets[kind])
            for item in items:
                obj = model.objects.get(**{"code" if key == "code" else "pk": item[key]})
                column = relation(world, role, obj)
                if not allowed("GET", detail_route, column):
                    crawl.problems.append(f"{list_route} lists {obj} to {role} ({column}: not allowed in detail)")
    crawl.report("lists")


def test_format_suffixes_do_not_widen_access(world):
    """`/api/v1/…/{pk}.json` and friends answer exactly as the route without the suffix may."""
    crawl = Crawl(world)
    suffixed = {_plain(t).split("{format}")[0] for t, p in _walk(get_resolver().url_patterns) if _is_suffix(p)}
    for (method, route), _expected in EXPECTED.items():
        stem = route.rstrip("/") + "."
        if method != "GET" or (stem not in suffixed and route + "{format}" not in suffixed):
            continue
        url = url_for(route, world)
        path, _, query = url.partition("?")
        url = path.rstrip("/") + ".json" + (f"?{query}" if query else "")
        for role in ROLES:
            if not allowed(method, route, role):
                crawl.refused(role, method, url, crawl.request(role, method, url), "the route itself refuses it")
    crawl.report("format suffixes")


def test_the_admin_is_for_staff_only(world):
    """One rule for every admin URL: only staff reach it; everyone else is sent to the admin's login."""
    crawl = Crawl(world)
    for route in admin_routes():
        url = re.sub(r"\{\w+\}", "1", route).replace("{", "").replace("}", "")
        if route in ("/admin/login/", "/admin/logout/"):
            continue
        # admin_view checks is_staff before anything else: every role at the index, the most entitled ones
        # (and anonymous users) everywhere
        for role in ROLES if route == "/admin/" else ("anon", "coord_site", "panel_assigned", "data_manager"):
            response = crawl.request(role, "GET", url)
            if not (response.status_code == 302 and response["Location"].startswith("/admin/login/")):
                crawl.problems.append(f"GET {url} as {role}: {response.status_code}, not the admin's login")
            crawl.refused(role, "POST", url, crawl.request(role, "POST", url), "the admin is for staff")
    staff = _signed_in(world.superuser)
    assert crawl.request("superuser", "GET", "/admin/", client=staff).status_code == 200
    crawl.report(f"admin: {len(admin_routes())} routes")


def _signed_in(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user, backend=matrix_world.MODEL_BACKEND)
    return client
