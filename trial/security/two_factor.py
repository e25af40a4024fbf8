"""TOTP two-factor authentication (django-otp): who must use it, enrolment, verification, removal and reset.

Roles are installation-wide (a data manager works on every trial of the installation), so a role that any trial
lists in `Trial.two_factor_roles` must use a second factor on the whole site, whether the trial is open for
enrolment or not: panel review and data management go on after enrolment closes. Anyone else may enrol an
authenticator voluntarily; whoever has one is asked for a code after every password login. Wrong codes are
throttled by django-otp (the wait doubles after each failure) and every outcome is written to the audit trail.
"""

import math
from base64 import b32encode
from urllib.parse import quote, urlencode

import segno
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from trial.audit.recorder import audit_context, record
from trial.models import Trial
from trial.roles import ROLE_LABELS, Role, roles_of
from trial.services.access import require_role
from trial.services.errors import InvalidInput, TrialError

MIN_REASON_LENGTH = 5


class Throttled(TrialError):
    status = 429
    code = "throttled"


# Who must use a second factor ---------------------------------------------------------------------------------


def required_roles() -> set[str]:
    """Role values that some trial of the installation requires to use a second factor."""
    required = set()
    for roles in Trial.objects.exclude(two_factor_roles=[]).values_list("two_factor_roles", flat=True):
        required.update(roles)
    return required


def is_required(user) -> bool:
    """A role some trial lists; and staff and superusers whenever any trial asks for a second factor at all (the
    admin reaches every table, so it must not be the password-only way in)."""
    required = required_roles()
    if user.is_staff or user.is_superuser:
        return bool(required)
    return bool({role.value for role in roles_of(user)} & required)


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def must_verify(user) -> bool:
    """True when this signed-in user may do nothing until a code from their authenticator is verified."""
    return is_required(user) or TOTPDevice.objects.filter(user=user, confirmed=True).exists()


# Enrolment and verification ------------------------------------------------------------------------------------


def pending_device(user) -> TOTPDevice:
    """The authenticator being enrolled: made on the first visit and kept until confirmed, so that reloading the
    page does not invalidate a QR code already scanned, and wrong confirmation codes are throttled on it."""
    if confirmed_device(user) is not None:
        raise InvalidInput("You already have an authenticator. Remove it first to enrol a new one.")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def provisioning_uri(device: TOTPDevice) -> str:
    """The otpauth:// URI authenticator apps read (Google Authenticator key-URI format)."""
    issuer = (getattr(settings, "OTP_TOTP_ISSUER", "") or "ContourTrial").replace(":", "")
    label = quote(f"{issuer}:{device.user.get_username()}")
    secret = b32encode(device.bin_key).decode()
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": device.digits,
                       "period": device.step})  # fmt: skip
    return f"otpauth://totp/{label}?{query}"


def secret_for_display(device: TOTPDevice) -> str:
    """The base32 secret in groups of four, for typing into an app by hand."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_svg(uri: str) -> str:
    """Inline SVG markup (no script, no style attribute), allowed by the site's Content-Security-Policy."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=4, light="#fff", title="Scan with your app")


def confirm_enrolment(user, token: str) -> TOTPDevice:
    """Confirm the pending authenticator with a code it shows; the caller then marks the session verified."""
    device = _check_code(user, pending_device(user), token, stage="enrolment")
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        _record(user, "two_factor_enrolled", {"two_factor": [None, "totp"]}, actor=user)
    return device


def verify(user, token: str) -> TOTPDevice:
    """Check a code from the user's confirmed authenticator; the caller then marks the session verified."""
    device = confirmed_device(user)
    if device is None:
        raise InvalidInput("You have no authenticator yet: enrol one first.")
    device = _check_code(user, device, token, stage="verification")
    _record(user, "two_factor_verified", {}, actor=user)
    return device


def _check_code(user, device: TOTPDevice, token: str, stage: str) -> TOTPDevice:
    """One throttled attempt. The failure count and the audit entry commit even though the attempt is refused."""
    token = "".join((token or "").split())
    if not (token.isdigit() and len(token) == device.digits):
        raise InvalidInput(f"Enter the {device.digits}-digit code your authenticator app shows now.")
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        allowed, why = device.verify_is_allowed()
        accepted = allowed and device.verify_token(token)
        if not accepted:
            _record(user, "two_factor_failed", {"stage": stage, "throttled": not allowed}, actor=user)
    if not allowed:
        wait = math.ceil(((why or {}).get("locked_until", timezone.now()) - timezone.now()).total_seconds())
        raise Throttled(f"Too many wrong codes: wait {max(wait, 1)} seconds, then enter the current code.")
    if not accepted:
        raise InvalidInput(
            "That code is not right. Enter the code your app shows now (codes change every 30 seconds, and each "
            "is accepted once); check that your phone's clock is set automatically."
        )
    return device


# Removal and reset -----------------------------------------------------------------------------------------------


def remove(user) -> None:
    """A user removes their own authenticator (to move to a new phone they then enrol again)."""
    with transaction.atomic():
        if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            raise InvalidInput("You have no authenticator to remove.")
        TOTPDevice.objects.filter(user=user).delete()
        _record(user, "two_factor_removed", {"two_factor": ["totp", None]}, actor=user)


def reset(*, actor, user, reason: str) -> None:
    """A data manager removes another user's authenticator (a lost phone); the user enrols again at next sign-in.
    Sessions the user had verified with it stop being verified (django-otp no longer finds the device)."""
    require_role(actor, Role.DATA_MANAGER, action="reset another user's two-factor authenticator")
    if user.pk == actor.pk:
        raise InvalidInput("Remove your own authenticator on your two-factor page; another data manager resets it.")
    reason = _reason(reason)
    with transaction.atomic():
        if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            raise InvalidInput(f"{user.get_username()} has no authenticator to reset.")
        TOTPDevice.objects.filter(user=user).delete()
        _record(user, "two_factor_reset", {"two_factor": ["totp", None]}, actor=actor, reason=reason)


# The trial's requirement ------------------------------------------------------------------------------------------


def set_required_roles(*, actor, trial: Trial, roles, reason: str) -> Trial:
    """Data managers choose which roles must use a second factor. Audited like every trial change (old → new,
    who, when, why). Allowed after the database lock too: it guards access, it is not trial data."""
    require_role(actor, Role.DATA_MANAGER, action="change which roles must use two-factor authentication")
    unknown = sorted(set(roles) - {role.value for role in Role})
    if unknown:
        raise InvalidInput(f"Unknown role(s): {', '.join(unknown)}. Choose from {', '.join(r.value for r in Role)}.")
    chosen = [role.value for role in Role if role.value in set(roles)]
    reason = _reason(reason)
    with transaction.atomic(), audit_context(actor, reason=reason):
        trial = Trial.objects.select_for_update(no_key=True).get(pk=trial.pk)
        if list(trial.two_factor_roles) == chosen:
            raise InvalidInput(f"{trial.protocol_id} already requires this; nothing to change.")
        trial.two_factor_roles = chosen
        trial.save()
    return trial


def role_labels(values) -> list[str]:
    return [ROLE_LABELS[Role(value)] for value in values if value in {role.value for role in Role}]


def staff_devices() -> list[tuple]:
    """(user, role labels, required?, enrolled-at or None) for every user with a role, for the data manager."""
    required = required_roles()
    enrolled = dict(TOTPDevice.objects.filter(confirmed=True).values_list("user_id", "created_at"))
    users = get_user_model().objects.filter(groups__isnull=False).distinct().order_by("username")
    rows = []
    for user in users.prefetch_related("groups"):
        mine = sorted({group.name for group in user.groups.all()} & {role.value for role in Role})
        rows.append((user, role_labels(mine), bool(set(mine) & required), enrolled.get(user.pk)))
    return rows


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_LENGTH:
        raise InvalidInput(f"Give the reason for the change (at least {MIN_REASON_LENGTH} characters).")
    return reason


def _record(user, action: str, changes: dict, *, actor, reason: str = "") -> None:
    record(action=action, model="auth.user", object_pk=user.pk, object_repr=user.get_username(), changes=changes,
           actor=actor, reason=reason)  # fmt: skip
