"""Sessions: a session idle past SESSION_IDLE_TIMEOUT is signed out, activity extends it, SESSION_MAX_AGE after
sign-in ends it regardless; cookies are HttpOnly and SameSite=Lax (Secure in production: test_deploy_check)."""

import datetime as dt

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from tests.conftest import make_user
from trial.security.sessions import RENEWED_AT, SIGNED_IN_AT

pytestmark = pytest.mark.django_db

PAGE = "/"  # the home page needs a signed-in user


@pytest.fixture
def client_signed_in():
    client = Client()
    client.force_login(make_user("nurse", None))
    assert client.get(PAGE).status_code != 302
    return client


def stored(client) -> Session:
    return Session.objects.get(session_key=client.session.session_key)


def edit_session(client, **changes):
    session = client.session
    session.update(changes)
    session.save()


def assert_signed_out(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


def test_idle_timeout_defaults_to_30_minutes_and_cookies_are_http_only_and_lax(client_signed_in):
    assert settings.SESSION_COOKIE_AGE == settings.SESSION_IDLE_TIMEOUT == 1800
    response = Client().get("/accounts/login/")
    csrf = response.cookies["csrftoken"]
    assert csrf["httponly"] and csrf["samesite"] == "Lax"
    client = client_signed_in
    edit_session(client, **{RENEWED_AT: 0})
    cookie = client.get(PAGE).cookies["sessionid"]  # renewed: sent again
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["max-age"] == 1800


def test_a_session_idle_beyond_the_timeout_is_signed_out(client_signed_in):
    Session.objects.filter(pk=stored(client_signed_in).pk).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    assert_signed_out(client_signed_in)


def test_activity_extends_the_session(client_signed_in):
    client = client_signed_in
    almost = timezone.now() + dt.timedelta(minutes=2)
    edit_session(client, **{RENEWED_AT: 0})  # the last renewal was long ago
    Session.objects.filter(pk=stored(client).pk).update(expire_date=almost)
    assert client.get(PAGE).status_code != 302
    renewed = stored(client).expire_date
    assert renewed - timezone.now() > dt.timedelta(seconds=settings.SESSION_IDLE_TIMEOUT - 60)

    client.get(PAGE)  # within SESSION_RENEW_AFTER of the renewal: no write
    assert stored(client).expire_date == renewed


def test_the_absolute_limit_ends_even_an_active_session(client_signed_in):
    edit_session(client_signed_in, **{SIGNED_IN_AT: stored(client_signed_in).get_decoded()[SIGNED_IN_AT] - 13 * 3600})
    assert_signed_out(client_signed_in)
    assert not Session.objects.filter(pk=client_signed_in.cookies["sessionid"].value).exists()
