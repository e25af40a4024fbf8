"""Acceptance: every GET endpoint and page, requested as every role, leaks no allocation the role may not
see, and nothing about the randomisation secret or future allocations. Statisticians work blinded (A/B) until
a data manager unblinds after the database lock; from then on they see every arm."""

import base64
import json
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from tests.conftest import PASSWORD, World, enrol
from trial.audit.recorder import REDACTED
from trial.models import AuditEntry, Patient, RandomisationSecret, Site, Trial
from trial.services.audit_requests import request_verification
from trial.services.randomisation import randomise

pytestmark = pytest.mark.django_db

FORBIDDEN_KEYS = {"seed", "block_sizes", "stratum_position", "next_arm", "next_allocation", "sequence"}
SKIP = {"admin", "logout"}


def _routes(patterns=None, prefix=""):
    """Every URL pattern of the project as (route, name), route in plain text with `{pk}`-style holes."""
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        text = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if text.startswith("admin/"):
                continue
            yield from _routes(pattern.url_patterns, prefix + text)
        elif isinstance(pattern, URLPattern):
            route = prefix + text
            if "format" in route or pattern.name in SKIP:
                continue
            route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
            route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
            yield "/" + route.replace("^", "").replace("$", "").replace("\\", ""), pattern.name


def _redacted(value) -> bool:
    return isinstance(value, list) and value and all(v in (None, REDACTED) for v in value) and REDACTED in value


def _json_keys_and_allocations(node, keys, allocations):
    if isinstance(node, dict):
        # Audit entries name redacted secret fields with their values withheld; that reveals nothing.
        keys.update(key for key, value in node.items() if not _redacted(value))
        if node.get("trial_number") and node.get("allocation"):
            allocations.add((node["trial_number"], node["allocation"]["arm"]))
        if node.get("model") == "trial.allocation":
            allocations.add(("audit", node.get("object_pk")))
        for value in node.values():
            _json_keys_and_allocations(value, keys, allocations)
    elif isinstance(node, list):
        for value in node:
            _json_keys_and_allocations(value, keys, allocations)


@pytest.fixture
def populated(db):
    world = World()
    for i, (site, coordinator, physician) in enumerate(
        [("AAR", world.coordinator, world.physician)] * 3 + [("ODE", world.coordinator_ode, world.physician_ode)] * 2
    ):
        patient = enrol(world.trial, coordinator, physician, f"P{i}", site=site)
        if i != 2:
            randomise(actor=coordinator, patient=patient, password=PASSWORD)
    request_verification(world.data_manager)
    return world


def _ids():
    ids = set(Patient.objects.values_list("pk", flat=True)) | set(Site.objects.values_list("pk", flat=True))
    ids |= set(Trial.objects.values_list("pk", flat=True)) | {1, 2}
    ids |= set(AuditEntry.objects.filter(model="trial.allocation").values_list("seq", flat=True)[:6])
    return sorted(ids)


def _review_code() -> str:
    from panel_review.models import ReviewCase

    case = ReviewCase.objects.first()
    return case.code if case else "R-AAAA-AAAA"


def _crawl(user):
    client = APIClient()
    client.force_login(user)
    for route, name in _routes():
        route = route.replace("{code}", _review_code()).replace("{kind}", "ct").replace("{index}", "0")
        route = route.replace("{what}", "endpoints").replace("{fmt}", "csv")
        urls = [route] if "{pk}" not in route else [route.replace("{pk}", str(i)) for i in _ids()]
        for url in urls:
            if "{" in url:
                raise AssertionError(f"route {route} ({name}) has a parameter the crawl cannot fill")
            yield url, client.get(url)


@pytest.mark.parametrize("role", ["coordinator", "physician", "panel", "statistician", "data_manager"])
def test_no_role_receives_what_it_may_not_see(populated, role):
    world = populated
    user = {
        "coordinator": world.coordinator,
        "physician": world.physician,
        "panel": world.panel,
        "statistician": world.statistician,
        "data_manager": world.data_manager,
    }[role]
    secret = RandomisationSecret.objects.get(trial=world.trial)
    secret_forms = [bytes(secret.seed).hex(), base64.b64encode(bytes(secret.seed)).decode()]
    allowed = {
        "coordinator": set(Patient.objects.filter(site__code="AAR").values_list("trial_number", flat=True)),
        "physician": set(Patient.objects.filter(physician=world.physician).values_list("trial_number", flat=True)),
        "panel": set(),
        "statistician": set(),
        "data_manager": set(Patient.objects.values_list("trial_number", flat=True)),
    }[role]

    seen, crawled = set(), 0
    for url, response in _crawl(user):
        crawled += 1
        assert response.status_code < 500, (url, response.status_code)
        body = response.content.decode(errors="replace")
        for form in secret_forms:
            assert form not in body, f"{url} reveals the randomisation seed"
        if response.status_code != 200:
            continue
        if response["Content-Type"].startswith("application/json"):
            keys, allocations = set(), set()
            _json_keys_and_allocations(json.loads(body), keys, allocations)
            assert not keys & FORBIDDEN_KEYS, (url, keys & FORBIDDEN_KEYS)
            for trial_number, _arm in allocations:
                if trial_number == "audit":
                    assert role == "data_manager", f"{url} shows allocation audit to {role}"
                else:
                    assert trial_number in allowed, f"{url} shows {trial_number}'s arm to {role}"
                    seen.add(trial_number)
        elif role in ("panel", "statistician"):
            assert "arm-ai" not in body and "arm-manual" not in body, f"{url} shows an arm to the panel"
    assert crawled > 40
    randomised = set(Patient.objects.filter(status="randomised").values_list("trial_number", flat=True))
    assert seen == allowed & randomised, "each role sees exactly the arms it is entitled to"


def test_panel_is_refused_every_patient_and_audit_endpoint(populated):
    client = APIClient()
    client.force_login(populated.panel)
    patient = Patient.objects.first()
    for url in ("/api/v1/patients/", f"/api/v1/patients/{patient.pk}/", "/api/v1/audit/entries/",
                f"/patients/{patient.pk}/", "/patients/", "/audit/"):  # fmt: skip
        assert client.get(url).status_code in (403, 404), url


def test_anonymous_users_get_nothing(populated):
    client = APIClient()
    for url in ("/api/v1/patients/", "/api/v1/trials/", "/api/v1/audit/entries/", "/api/schema/"):
        assert client.get(url).status_code in (401, 403), url
    assert client.get("/patients/").status_code == 302


def test_statisticians_see_the_arms_once_unblinded_after_the_lock(populated):
    from endpoints import services as endpoints

    world = populated
    client = APIClient()
    client.force_login(world.statistician)
    randomised = set(Patient.objects.filter(status="randomised").values_list("trial_number", flat=True))

    def arms_shown():
        keys, allocations = set(), set()
        _json_keys_and_allocations(client.get("/api/v1/patients/").json(), keys, allocations)
        audit = client.get("/api/v1/audit/entries/?model=trial.allocation").json()
        _json_keys_and_allocations(audit, keys, allocations)
        page = client.get("/patients/").content.decode()
        return allocations, "arm-ai" in page or "arm-manual" in page

    allocations, on_page = arms_shown()
    assert not allocations and not on_page
    endpoints.lock(actor=world.data_manager, trial=world.trial, password=PASSWORD)
    allocations, on_page = arms_shown()
    assert not allocations and not on_page, "the lock alone unblinds nothing"
    endpoints.unblind(actor=world.data_manager, trial=world.trial, password=PASSWORD, reason="final analysis")
    allocations, on_page = arms_shown()
    assert {number for number, _arm in allocations if number != "audit"} == randomised and on_page
    assert any(number == "audit" for number, _arm in allocations), "allocation audit entries now reach them"
