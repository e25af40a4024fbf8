"""Deletes (including cascades) and account events go to the audit trail too."""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed

from .recorder import record, record_change, snapshot


def audit_delete(sender, instance, **kwargs):
    record_change(instance, "delete", snapshot(instance), None)


def _logged_in(sender, request, user, **kwargs):
    record(
        action="login", model="auth.user", object_pk=user.pk, object_repr=user.get_username(), changes={}, actor=user
    )


def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        record(
            action="logout",
            model="auth.user",
            object_pk=user.pk,
            object_repr=user.get_username(),
            changes={},
            actor=user,
        )


def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    record(action="login_failed", model="auth.user", object_pk="", object_repr=username, changes={})


def _roles_changed(sender, instance, action, pk_set, **kwargs):
    """Role (group) changes are account changes that ICH E6(R3) asks to be logged."""
    if action not in {"post_add", "post_remove", "post_clear"} or not isinstance(instance, get_user_model()):
        return
    from django.contrib.auth.models import Group

    names = sorted(Group.objects.filter(pk__in=pk_set or []).values_list("name", flat=True))
    change = {"post_add": [None, names], "post_remove": [names, None], "post_clear": ["all", None]}[action]
    record(
        action="roles_changed",
        model="auth.user",
        object_pk=instance.pk,
        object_repr=instance.get_username(),
        changes={"groups": change},
    )


def connect_account_events():
    user_logged_in.connect(_logged_in, dispatch_uid="audit-login")
    user_logged_out.connect(_logged_out, dispatch_uid="audit-logout")
    user_login_failed.connect(_login_failed, dispatch_uid="audit-login-failed")
    m2m_changed.connect(_roles_changed, sender=get_user_model().groups.through, dispatch_uid="audit-roles")
