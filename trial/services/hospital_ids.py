"""Hospital patient ids are kept only as a keyed hash, so a coordinator can find a patient again."""

import hashlib
import hmac

from django.conf import settings

from .errors import InvalidInput


def normalise(hospital_id: str) -> str:
    """Ignore case, spaces and hyphens, which differ between how ids are typed and printed."""
    cleaned = "".join(ch for ch in str(hospital_id or "") if not ch.isspace() and ch != "-").upper()
    if not cleaned:
        raise InvalidInput("The hospital patient id is empty.")
    if len(cleaned) > 64:
        raise InvalidInput("The hospital patient id is longer than 64 characters.")
    return cleaned


def hospital_id_hash(hospital_id: str) -> str:
    return hmac.new(settings.PATIENT_ID_KEY, normalise(hospital_id).encode(), hashlib.sha256).hexdigest()
