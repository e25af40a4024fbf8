"""Electronic signatures: password re-entry, then a signed record of who, when, what it means."""

import hashlib
import json

from django.core.serializers.json import DjangoJSONEncoder

from trial.audit.recorder import record
from trial.models import Signature
from trial.security.signature_throttle import refuse_if_throttled

from .errors import NotAllowed


def content_hash(content: dict) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_password(user, password: str, meaning: str) -> None:
    """Refuse the signature (and record the refusal) unless the signer re-enters their password."""
    refuse_if_throttled(user)  # too many recent refusals: not even checked (trial/security/signature_throttle.py)
    if not password or not user.check_password(password):
        record(
            action="signature_refused",
            model="auth.user",
            object_pk=user.pk,
            object_repr=user.get_username(),
            changes={"meaning": [None, meaning]},
            actor=user,
        )
        raise NotAllowed("The password is not correct, so the signature was not applied and nothing was changed.")


def sign(user, meaning: str, subject: str, content: dict) -> Signature:
    """Create the signature record. Call inside the transaction that makes the signed change."""
    signature = Signature(
        signer=user,
        signer_name=user.get_full_name() or user.get_username(),
        meaning=meaning,
        statement=Signature.Meaning(meaning).label,
        subject=subject,
        content_hash=content_hash(content),
    )
    signature.save()
    return signature
