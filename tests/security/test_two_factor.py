"""TOTP two-factor authentication that a trial requires of some roles: enrolment with a QR code, a code at every
sign-in, pages and API refused until then, throttled wrong codes, a data manager's reset of a lost authenticator,
all audited. Codes are computed from the device's key with django_otp.oath.TOTP, as an authenticator app would."""

import base64
import datetime as dt
import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import PASSWORD, World
from trial.audit.verify import verify_stored_chain
from trial.models import AuditEntry, Trial
from trial.security import two_factor

pytestmark = pytest.mark.django_db

ENROL, VERIFY, MANAGE = "/accounts/two-factor/enrol/", "/accounts/two-factor/verify/", "/accounts/two-factor/manage/"
API = "/api/v1/me/"
REQUIRED = ["panel", "data_manager"]  # stored in the order of trial.roles.Role


@pytest.fixture
def world(db):
    return World()


def require(world, roles=REQUIRED):
    two_factor.set_required_roles(actor=world.data_manager, trial=world.trial, roles=roles, reason="security review")


def sign_in(user) -> Client:
    """A browser session after the password step of the real login page."""
    client = Client()
    answer = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert answer.status_code == 302, answer.content.decode()[:500]
    return client


def code_for(device) -> str:
    """The code an authenticator shows now, for a time step the device has not accepted yet (each code is accepted
    once), chosen so that it stays valid if a 30-second boundary passes before the server checks it."""
    device.refresh_from_db()
    now_step = int(time.time() - device.t0) // device.step
    step = max(now_step + device.drift, device.last_t + 1)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    totp.time = device.t0 + step * device.step
    return f"{totp.token():0{device.digits}d}"


def wrong_code(device) -> str:
    return f"{(int(code_for(device)) + 1) % 10**6:06d}"


def enrol(client, user) -> TOTPDevice:
    assert client.get(ENROL).status_code == 200
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    answer = client.post(ENROL, {"code": code_for(device), "next": "/"})
    assert answer.status_code == 302 and answer["Location"] == "/", answer.content.decode()[:800]
    return TOTPDevice.objects.get(user=user, confirmed=True)


def is_refused(client) -> bool:
    """Pages redirect to a two-factor page and the API answers 403 with code two_factor_required."""
    page = client.get("/")
    api = client.get(API)
    refused_page = page.status_code == 302 and page["Location"].startswith("/accounts/two-factor/")
    refused_api = api.status_code == 403 and api.json().get("code") == "two_factor_required"
    assert refused_page == refused_api, (page.status_code, api.status_code)
    if not refused_page:
        assert page.status_code == 200 and api.status_code == 200
    return refused_page


def audit(action, user=None):
    entries = AuditEntry.objects.filter(action=action, model="auth.user").order_by("seq")
    return list(entries.filter(object_pk=str(user.pk)) if user is not None else entries)


def everyone(world):
    return [world.coordinator, world.coordinator_ode, world.physician, world.physician_ode, world.panel,
            world.statistician, world.data_manager]  # fmt: skip


def test_without_a_requirement_nothing_changes_for_anyone(world):
    assert Trial.objects.get(pk=world.trial.pk).two_factor_roles == []
    for user in everyone(world):
        assert not is_refused(sign_in(user)), user.username
    assert not TOTPDevice.objects.exists()


def test_data_managers_set_the_requirement_with_a_reason_and_the_change_is_audited(world):
    manager = Client()
    manager.force_login(world.data_manager)
    page = manager.get(MANAGE).content.decode()
    assert world.trial.protocol_id in page and "Expert panel member" in page

    manager.post(MANAGE, {"trial": world.trial.pk, "roles": REQUIRED, "reason": ""})
    manager.post(MANAGE, {"trial": world.trial.pk, "roles": ["data_manager", "janitor"], "reason": "review"})
    assert Trial.objects.get(pk=world.trial.pk).two_factor_roles == []
    for user in (world.coordinator, world.statistician, world.panel):
        other = Client()
        other.force_login(user)
        assert other.post(MANAGE, {"trial": world.trial.pk, "roles": REQUIRED, "reason": "mine now"}).status_code == 403
    assert Trial.objects.get(pk=world.trial.pk).two_factor_roles == []

    answer = manager.post(MANAGE, {"trial": world.trial.pk, "roles": ["data_manager", "panel"], "reason": "SOP 12"})
    assert answer.status_code == 302
    assert Trial.objects.get(pk=world.trial.pk).two_factor_roles == REQUIRED
    entry = AuditEntry.objects.filter(model="trial.trial", object_pk=str(world.trial.pk)).order_by("-seq").first()
    assert entry.action == "update" and entry.changes == {"two_factor_roles": [[], REQUIRED]}
    assert entry.reason == "SOP 12" and entry.actor_username == world.data_manager.username
    # The data manager's own role is now required: the next page is the enrolment.
    assert manager.get(MANAGE)["Location"] == f"{ENROL}?next=%2Faccounts%2Ftwo-factor%2Fmanage%2F"


def test_required_roles_enrol_and_then_verify_at_every_sign_in_while_others_are_not_asked(world):
    require(world)
    coordinator = sign_in(world.coordinator)
    assert not is_refused(coordinator) and not TOTPDevice.objects.filter(user=world.coordinator).exists()

    panel = sign_in(world.panel)
    assert panel.get("/review/")["Location"] == f"{ENROL}?next=%2Freview%2F"
    api = panel.get("/api/v1/review/cases/")
    assert api.status_code == 403 and api["Content-Type"] == "application/json"
    assert api.json()["code"] == "two_factor_required" and ENROL in api.json()["detail"]
    assert panel.get("/static/css/app.css").status_code != 302, "static files are not behind the second factor"
    assert panel.get(VERIFY)["Location"].startswith(ENROL), "no authenticator yet: verification sends to enrolment"

    page = panel.get(f"{ENROL}?next=/review/")
    body = page.content.decode()
    device = TOTPDevice.objects.get(user=world.panel, confirmed=False)
    assert page.status_code == 200 and "<svg" in body and "style=" not in body and "<script" not in body
    shown = _secret_on(body)
    assert base64.b32decode(shown + "=" * (-len(shown) % 8)) == device.bin_key
    assert _secret_on(panel.get(f"{ENROL}?next=/review/").content.decode()) == shown, "a reload keeps the key"
    answer = panel.post(ENROL, {"code": code_for(device), "next": "/review/"})
    assert answer.status_code == 302 and answer["Location"] == "/review/"
    assert not is_refused(panel)
    assert panel.get("/review/").status_code == 200 and panel.get("/api/v1/review/cases/").status_code == 200
    assert [e.actor_username for e in audit("two_factor_enrolled", world.panel)] == [world.panel.username]

    again = sign_in(world.panel)  # a new sign-in asks for the code, not for a new enrolment
    assert again.get("/review/")["Location"] == f"{VERIFY}?next=%2Freview%2F"
    assert VERIFY in again.get(API).json()["detail"]
    assert again.get(ENROL)["Location"].startswith(VERIFY), "a second authenticator cannot be enrolled unverified"
    answer = again.post(VERIFY, {"code": code_for(device), "next": "/review/"})
    assert answer.status_code == 302 and answer["Location"] == "/review/"
    assert not is_refused(again) and len(audit("two_factor_verified", world.panel)) == 1
    assert TOTPDevice.objects.filter(user=world.panel).count() == 1

    manager = sign_in(world.data_manager)
    assert is_refused(manager)
    enrol(manager, world.data_manager)
    assert not is_refused(manager) and manager.get(MANAGE).status_code == 200

    admin = get_user_model().objects.create_superuser("root2fa", password=PASSWORD)  # no trial role, admin access
    root = sign_in(admin)
    assert root.get("/admin/")["Location"].startswith(ENROL), "the admin is no password-only way in"

    unverified = sign_in(world.data_manager)
    answer = unverified.post("/accounts/logout/")
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/", "sign-out stays reachable"
    assert verify_stored_chain().ok


def _secret_on(page: str) -> str:
    return re.search(r'id="two-factor-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")


def test_wrong_codes_are_refused_and_repeated_ones_throttled(world, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 10  # waits of 10 s, 20 s, …: no race with the test's own speed
    require(world)
    panel = sign_in(world.panel)
    panel.get(ENROL)
    pending = TOTPDevice.objects.get(user=world.panel, confirmed=False)
    assert "not right" in panel.post(ENROL, {"code": wrong_code(pending)}).content.decode()
    assert "Too many wrong codes" in panel.post(ENROL, {"code": code_for(pending)}).content.decode()
    assert not TOTPDevice.objects.filter(user=world.panel, confirmed=True).exists() and is_refused(panel)
    pending.refresh_from_db()
    _let_time_pass(pending)
    device = enrol(panel, world.panel)

    again = sign_in(world.panel)
    assert "Enter the 6-digit code" in again.post(VERIFY, {"code": "12ab"}).content.decode()
    assert "not right" in again.post(VERIFY, {"code": wrong_code(device)}).content.decode()
    assert "Too many wrong codes" in again.post(VERIFY, {"code": wrong_code(device)}).content.decode()
    assert "Too many wrong codes" in again.post(VERIFY, {"code": code_for(device)}).content.decode()
    device.refresh_from_db()
    assert device.throttling_failure_count == 1, "refused while throttled: not even checked"
    assert is_refused(again)
    failures = audit("two_factor_failed", world.panel)
    assert [(e.changes["stage"], e.changes["throttled"]) for e in failures] == [
        ("enrolment", False), ("enrolment", True), ("verification", False), ("verification", True),
        ("verification", True),
    ]  # fmt: skip
    _let_time_pass(device)
    assert again.post(VERIFY, {"code": code_for(device)}).status_code == 302
    assert not is_refused(again)


def _let_time_pass(device):
    """The throttling wait is over: the last failure moves back in time (TOTPDevice is not audited data)."""
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=device.throttling_failure_timestamp - dt.timedelta(minutes=10)
    )


def test_password_only_basic_authentication_cannot_pass_the_second_factor(world):
    require(world)
    credentials = base64.b64encode(f"{world.panel.username}:{PASSWORD}".encode()).decode()
    assert Client().get(API, HTTP_AUTHORIZATION=f"Basic {credentials}").status_code == 403


def test_a_data_manager_resets_a_lost_authenticator_with_a_reason_and_others_cannot(world):
    require(world)
    panel = sign_in(world.panel)
    enrol(panel, world.panel)
    manager = sign_in(world.data_manager)
    enrol(manager, world.data_manager)
    assert world.panel.username in manager.get(MANAGE).content.decode()

    for user in (world.coordinator, world.statistician, world.physician):
        other = sign_in(user)
        assert other.post("/accounts/two-factor/reset/", {"user": world.panel.pk, "reason": "lost"}).status_code == 403
    manager.post("/accounts/two-factor/reset/", {"user": world.panel.pk, "reason": ""})
    manager.post("/accounts/two-factor/reset/", {"user": world.data_manager.pk, "reason": "my own phone"})
    assert TOTPDevice.objects.filter(confirmed=True).count() == 2 and not audit("two_factor_reset")

    answer = manager.post(
        "/accounts/two-factor/reset/", {"user": world.panel.pk, "reason": "phone lost, identity checked"}, follow=True
    )
    assert "reset" in answer.content.decode()
    assert not TOTPDevice.objects.filter(user=world.panel).exists()
    [entry] = audit("two_factor_reset")
    assert entry.object_pk == str(world.panel.pk) and entry.actor_username == world.data_manager.username
    assert entry.reason == "phone lost, identity checked" and entry.changes == {"two_factor": ["totp", None]}
    assert panel.get("/")["Location"].startswith(ENROL), "the session verified with the lost phone is not any more"
    enrol(panel, world.panel)
    assert not is_refused(panel)


def test_anyone_may_enrol_voluntarily_and_is_then_asked_for_the_code_until_they_remove_it(world):
    coordinator = sign_in(world.coordinator)
    assert "optional" in coordinator.get("/accounts/two-factor/").content.decode()
    device = enrol(coordinator, world.coordinator)
    assert not is_refused(coordinator)

    again = sign_in(world.coordinator)
    assert is_refused(again) and again.get("/")["Location"].startswith(VERIFY)
    again.post(VERIFY, {"code": code_for(device)})
    assert not is_refused(again)
    assert again.post("/accounts/two-factor/remove/").status_code == 302
    assert not TOTPDevice.objects.filter(user=world.coordinator).exists()
    assert len(audit("two_factor_removed", world.coordinator)) == 1
    assert not is_refused(sign_in(world.coordinator))
    assert verify_stored_chain().ok
