"""Two-factor pages: the user's own status, enrolment (secret + QR code), verification, removal; and the data
manager's page that sets which roles must use a second factor and resets a lost authenticator. The services in
two_factor decide; these views parse forms and report the outcome."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from trial.models import Trial
from trial.roles import ROLE_LABELS, Role, has_role
from trial.services.errors import TrialError

from . import two_factor


class CodeForm(forms.Form):
    code = forms.CharField(
        label="6-digit code from your authenticator app",
        max_length=12,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True, "size": 8}
        ),
    )


def _is_verified(user) -> bool:
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe else reverse("home")


def _with_next(name: str, request) -> str:
    return f"{reverse(name)}?{urlencode({'next': _next(request)})}"


def _mark_verified(request, device) -> None:
    """This session has passed the second factor; a new session key, as at any change of privilege."""
    otp_login(request, device)
    request.session.cycle_key()


@login_required
@require_GET
def overview(request):
    user = request.user
    mine = {role.value for role in Role if has_role(user, role)}
    context = {
        "device": two_factor.confirmed_device(user),
        "verified": _is_verified(user),
        "required_for": two_factor.role_labels(sorted(mine & two_factor.required_roles())),
        "is_data_manager": has_role(user, Role.DATA_MANAGER),
    }
    return render(request, "registration/two_factor_home.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def enrol(request):
    user = request.user
    if two_factor.confirmed_device(user) is not None:
        return redirect(_next(request) if _is_verified(user) else _with_next("two-factor-verify", request))
    device = two_factor.pending_device(user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = two_factor.confirm_enrolment(user, form.cleaned_data["code"])
        except TrialError as exc:
            form.add_error("code", exc.message)
        else:
            _mark_verified(request, device)
            messages.success(request, "Authenticator enrolled. You will be asked for a code after each sign-in.")
            return redirect(_next(request))
    context = {
        "form": form,
        "qr": mark_safe(two_factor.qr_svg(two_factor.provisioning_uri(device))),  # noqa: S308 (segno's own markup)
        "secret": two_factor.secret_for_display(device),
        "next": _next(request),
        "required": two_factor.is_required(user),
    }
    return render(request, "registration/two_factor_enrol.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def verify(request):
    user = request.user
    if _is_verified(user):
        return redirect(_next(request))
    if two_factor.confirmed_device(user) is None:
        return redirect(_with_next("two-factor-enrol", request) if two_factor.is_required(user) else _next(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = two_factor.verify(user, form.cleaned_data["code"])
        except TrialError as exc:
            form.add_error("code", exc.message)
        else:
            _mark_verified(request, device)
            return redirect(_next(request))
    return render(request, "registration/two_factor_verify.html", {"form": form, "next": _next(request)})


@login_required
@require_POST
def remove(request):
    try:
        two_factor.remove(request.user)
    except TrialError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Authenticator removed.")
    return redirect("two-factor")


def _require_data_manager(request):
    if not has_role(request.user, Role.DATA_MANAGER):
        raise PermissionDenied("Only a data manager may manage two-factor authentication.")


@login_required
@require_http_methods(["GET", "POST"])
def manage(request):
    """Which roles each trial requires to use a second factor (changed with a reason), and everyone's status."""
    _require_data_manager(request)
    if request.method == "POST":
        trial = get_object_or_404(Trial, pk=_int(request.POST.get("trial")))
        try:
            two_factor.set_required_roles(actor=request.user, trial=trial, roles=request.POST.getlist("roles"),
                                          reason=request.POST.get("reason", ""))  # fmt: skip
        except TrialError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Two-factor requirement of {trial.protocol_id} changed (in the audit trail).")
        return redirect("two-factor-manage")
    trials = [(trial, set(trial.two_factor_roles)) for trial in Trial.objects.order_by("pk")]
    context = {"trials": trials, "roles": [(role.value, ROLE_LABELS[role]) for role in Role],
               "rows": two_factor.staff_devices()}  # fmt: skip
    return render(request, "registration/two_factor_manage.html", context)


@login_required
@require_POST
def reset(request):
    """A data manager removes another user's authenticator (a lost phone), with a reason."""
    _require_data_manager(request)
    user = get_object_or_404(get_user_model(), pk=_int(request.POST.get("user")))
    try:
        two_factor.reset(actor=request.user, user=user, reason=request.POST.get("reason", ""))
    except TrialError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Authenticator of {user.get_username()} reset; they enrol again at next sign-in.")
    return redirect("two-factor-manage")


def _int(value) -> int:
    return int(value) if str(value or "").isdigit() else 0
