"""The original patient identity, encrypted, so an approved contour can go back to the planning system."""

import hashlib
import json
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

IDENTITY_KEYWORDS = (
    "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
    "AccessionNumber", "ReferringPhysicianName",
)  # fmt: skip


def _cipher(key: bytes) -> AESGCM:
    return AESGCM(hashlib.sha256(b"contourtrial-identity\x00" + key).digest())


def seal_identity(ds, key: bytes) -> bytes:
    identity = {keyword: str(ds.get(keyword, "")) for keyword in IDENTITY_KEYWORDS}
    nonce = os.urandom(12)
    return nonce + _cipher(key).encrypt(nonce, json.dumps(identity).encode(), b"identity")


def open_identity(token: bytes, key: bytes) -> dict:
    token = bytes(token)
    return json.loads(_cipher(key).decrypt(token[:12], token[12:], b"identity"))
