"""Review codes and each panel member's case order: random, not derived from anything about the patient.

Pure: the code is drawn from the operating system's random source; the order key is an HMAC of a server
secret, the member and the code, so each member sees the cases in their own stable order that mixes the arms
and that nobody can reproduce without the secret.
"""

import hashlib
import hmac
import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed without mistakes


def new_review_code() -> str:
    """E.g. "R-7KQ3-M9XZ": 40 random bits."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"R-{chars[:4]}-{chars[4:]}"


def order_key(secret: bytes, reviewer_id: int, code: str) -> str:
    return hmac.new(secret, f"{reviewer_id}:{code}".encode(), hashlib.sha256).hexdigest()
