"""Every URL pattern of the project that accepts an unsafe method refuses a signed-in session without a CSRF token.

The patterns are walked from the resolver, so a new view is covered without touching this test. Django views
rely on CsrfViewMiddleware; DRF views are csrf_exempt for Django and enforce CSRF in SessionAuthentication, which
must therefore be their only way in (Basic authentication would skip CSRF, login throttling and two-factor)."""

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern
from rest_framework.authentication import SessionAuthentication
from rest_framework.views import APIView

from tests.conftest import make_user

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
SAMPLES = ("json", "1", ".json", "R-AAAA-BBBB", "ct")  # "json": a format suffix DRF knows
GROUP = re.compile(r"\(\?P<\w+>((?:[^()]|\([^()]*\))*)\)")
CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def sample(regex: str) -> str:
    """A value the parameter's regex accepts (the view refuses before it looks the object up)."""
    candidates = (*SAMPLES, regex.split("|")[0])
    return next(value for value in candidates if re.fullmatch(regex, value))


def concrete(pattern) -> str:
    if isinstance(pattern.pattern, RoutePattern):
        converters = pattern.pattern.converters
        return CONVERTER.sub(lambda m: sample(converters[m.group(1)].regex), str(pattern.pattern))
    regex = GROUP.sub(lambda m: sample(m.group(1)), str(pattern.pattern))
    return regex.replace("^", "").replace("$", "").replace("/?", "/").replace("\\.", ".")


def url_patterns(resolver=None, prefix="/"):
    """(concrete URL, URLPattern) for every pattern, includes flattened."""
    for pattern in (resolver or get_resolver()).url_patterns:
        url = prefix + concrete(pattern)
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern, url)
        else:
            assert isinstance(pattern, URLPattern)
            yield url, pattern


def view_class(callback):
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def unsafe_methods(callback) -> list[str]:
    """What the view answers: a viewset's action map, a class's handlers. A function view may take any method;
    CsrfViewMiddleware checks every unsafe method alike, and before the view runs, so POST stands for all."""
    actions = getattr(callback, "actions", None)
    if actions is not None:
        return [method for method in UNSAFE if method.lower() in actions]
    view = view_class(callback)
    if view is not None:
        return [method for method in UNSAFE if hasattr(view, method.lower())]
    return ["POST"]


ALL = list(url_patterns())


def test_every_pattern_is_reachable_by_its_sample_url():
    wrong = [(url, pattern.name) for url, pattern in ALL if resolve(url).func is not pattern.callback]
    assert not wrong, wrong


def test_csrf_exempt_views_are_drf_views_that_authenticate_by_session_only():
    exempt = [(url, view_class(p.callback)) for url, p in ALL if getattr(p.callback, "csrf_exempt", False)]
    assert exempt, "DRF's views are csrf_exempt for Django"
    not_drf = [url for url, view in exempt if not (view and issubclass(view, APIView))]
    assert not not_drf, f"csrf_exempt views outside DRF: {not_drf}"
    other_auth = {
        url: view.authentication_classes
        for url, view in exempt
        if not all(issubclass(auth, SessionAuthentication) for auth in view.authentication_classes)
    }
    assert not other_auth, f"API views reachable without a session (no CSRF check): {other_auth}"


@pytest.mark.django_db
def test_every_unsafe_request_without_a_token_is_refused():
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("signed_in", None))
    tried, accepted = 0, []
    for url, pattern in ALL:
        for method in unsafe_methods(pattern.callback):
            response = client.generic(method, url)
            tried += 1
            if response.status_code != 403 or b"CSRF" not in response.content:
                accepted.append(f"{method} {url} ({pattern.name}): {response.status_code}")
    assert tried > 100 and not accepted, accepted

    # The control: with the token the same kind of request passes the CSRF check (and meets the role check).
    client.get("/")
    token = client.cookies["csrftoken"].value
    for url in ("/audit/verify/", "/api/v1/audit/verifications/"):
        response = client.post(url, HTTP_X_CSRFTOKEN=token)
        assert response.status_code == 403 and b"CSRF" not in response.content, response.content
