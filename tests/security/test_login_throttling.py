"""Login throttling (django-axes): failures count per username and client address; the fifth locks that pair out
with HTTP 429 and the time to try again; the right password is refused until the cool-off has passed. Electronic
signatures, which re-enter the password in a signed-in session, are throttled alike."""

import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client, RequestFactory, override_settings

from tests.conftest import PASSWORD, enrol, make_user
from trial.models import Allocation
from trial.security.client_ip import client_ip

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
HOME = "/accounts/login/?next=/"


def sign_in(client, password, address="10.0.0.1", **headers):
    return client.post(LOGIN, {"username": "alice", "password": password}, REMOTE_ADDR=address, **headers)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_five_failures_lock_out_that_user_at_that_address_until_the_cool_off_has_passed():
    make_user("alice", None)
    attacker = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = sign_in(attacker, "guess")
        assert response.status_code == 200 and b"Please enter a correct username and password" in response.content
    locked = sign_in(attacker, "guess")
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content and b"UTC (in about 15 minutes)" in locked.content
    assert 14 * 60 <= int(locked["Retry-After"]) <= 15 * 60

    refused = sign_in(attacker, PASSWORD)  # the right password does not get through either
    assert refused.status_code == 429 and not signed_in(attacker)
    api = sign_in(attacker, PASSWORD, HTTP_ACCEPT="application/json")
    assert api.status_code == 429 and api.json()["code"] == "locked_out" and "Try again after" in api.json()["detail"]

    owner = Client()  # the same person from their own computer is not locked out by someone else's guesses
    assert sign_in(owner, PASSWORD, address="10.0.0.2").status_code == 302 and signed_in(owner)

    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.UTC) - settings.AXES_COOLOFF_TIME)  # cool-off over
    assert sign_in(attacker, PASSWORD).status_code == 302 and signed_in(attacker)
    assert not AccessAttempt.objects.filter(username="alice").exists()  # a success resets the count


def test_a_success_resets_the_count():
    make_user("alice", None)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "guess")
    assert sign_in(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "guess").status_code == 200
    assert sign_in(client, PASSWORD).status_code == 302


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_the_proxy_the_client_is_the_address_the_proxy_appended():
    request = RequestFactory().get("/", REMOTE_ADDR="172.18.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6, 10.0.0.7")
    assert client_ip(request) == "10.0.0.7"  # a forged entry on the left is not believed
    assert client_ip(RequestFactory().get("/", REMOTE_ADDR="172.18.0.5")) == "172.18.0.5"
    with override_settings(TRUSTED_PROXY_COUNT=0):
        assert client_ip(request) == "172.18.0.5"


def test_wrong_signature_passwords_are_throttled_too(world, settings):
    patient = enrol(world.trial, world.coordinator, world.physician, "H1")
    api = world.client(world.coordinator)
    url = f"/api/v1/patients/{patient.pk}/randomise/"
    for _ in range(settings.AXES_FAILURE_LIMIT):
        assert api.post(url, {"password": "guess"}, format="json").status_code == 403
    response = api.post(url, {"password": PASSWORD}, format="json")
    assert response.status_code == 429 and response.json()["code"] == "too_many_attempts"
    assert "Too many wrong passwords for signatures. Try again after" in response.json()["detail"]
    assert not Allocation.objects.exists()

    settings.AXES_COOLOFF_TIME = dt.timedelta(0)  # the refusals are audited and cannot be back-dated: shrink the window
    assert api.post(url, {"password": PASSWORD}, format="json").status_code == 201
