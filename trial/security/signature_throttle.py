"""Electronic signatures re-enter the password on an already signed-in session, so login throttling (django-axes)
does not see them. This throttle refuses a signature, before the password is even checked, once the signer has
AXES_FAILURE_LIMIT refused signatures within AXES_COOLOFF_TIME since their last successful one: a stolen session
cannot be used to guess the password. Refusals are the audit trail's `signature_refused` entries."""

from django.conf import settings
from django.db.models import Count, Max
from django.utils import timezone

from trial.models import AuditEntry, Signature
from trial.services.errors import TrialError

from .lockout import lockout_message


class TooManyAttempts(TrialError):
    status = 429
    code = "too_many_attempts"


def refuse_if_throttled(user) -> None:
    cool_off = settings.AXES_COOLOFF_TIME
    since = timezone.now() - cool_off
    last_signed = Signature.objects.filter(signer=user).aggregate(last=Max("signed_at"))["last"]
    if last_signed is not None:
        since = max(since, last_signed)
    refusals = AuditEntry.objects.filter(action="signature_refused", actor_id=user.pk, timestamp__gt=since)
    counted = refusals.aggregate(n=Count("seq"), last=Max("timestamp"))
    if counted["n"] >= settings.AXES_FAILURE_LIMIT:
        raise TooManyAttempts(lockout_message(counted["last"] + cool_off, what="wrong passwords for signatures"))
