"""Deterministic pseudonymous UIDs, and the UID attributes that must never be remapped.

A salted HMAC (not a plain hash) turns each original UID into a `2.25.<decimal>` UID (PS3.5 B.2), so the
same original always gives the same pseudonym (references between series and sessions stay consistent),
while nobody without the salt can confirm a guessed original UID. Class, transfer-syntax and coding-scheme
UIDs name *kinds* of things defined by the standard, not patients or studies, so remapping them would only
break the objects.
"""

import hashlib
import hmac

from pydicom.datadict import tag_for_keyword
from pydicom.tag import Tag
from pydicom.uid import UID

MINIMUM_SALT_BYTES = 16  # a short salt lets anyone with a list of candidate UIDs test them offline
UID_ROOT = "2.25."
_UID_BITS = 128  # PS3.5 B.2: a UUID-sized integer; 2.25. + 39 digits stays well under the 64-character limit

# Attributes whose values identify a class of object, a transfer syntax, an implementation or a coding
# scheme/context group: the same for every patient, needed by receivers to interpret the object.
CLASS_UID_KEYWORDS = frozenset(
    {
        "SOPClassUID",
        "AffectedSOPClassUID",
        "RequestedSOPClassUID",
        "ReferencedSOPClassUID",
        "MediaStorageSOPClassUID",
        "ReferencedSOPClassUIDInFile",
        "ReferencedRelatedGeneralSOPClassUIDInFile",
        "RelatedGeneralSOPClassUID",
        "OriginalSpecializedSOPClassUID",
        "SOPClassesInStudy",
        "TransferSyntaxUID",
        "ReferencedTransferSyntaxUIDInFile",
        "ImplementationClassUID",
        "CodingSchemeUID",
        "ContextUID",
        "MappingResourceUID",
        "ContextGroupExtensionCreatorUID",
        "PrivateInformationCreatorUID",
    }
)
CLASS_UID_TAGS = frozenset(tag_for_keyword(keyword) for keyword in CLASS_UID_KEYWORDS)


class UIDError(ValueError):
    """A UID or salt cannot be used for remapping; the message says which and what to do."""


def check_salt(salt: bytes) -> None:
    """Refuse salts too short to stop an offline guess of the original UIDs (or dates)."""
    if not isinstance(salt, bytes | bytearray) or len(salt) < MINIMUM_SALT_BYTES:
        raise UIDError(
            f"The de-identification salt must be at least {MINIMUM_SALT_BYTES} random bytes "
            "(e.g. secrets.token_bytes(32)); keep it secret and the same for the whole trial."
        )


def remap_uid(uid: str, salt: bytes) -> str:
    """Return the pseudonymous `2.25.<decimal>` UID for `uid` under `salt` (same input, same output)."""
    check_salt(salt)
    original = str(uid).strip().rstrip("\x00").strip()
    if not original:
        raise UIDError("Cannot remap an empty UID; leave empty UID attributes empty.")
    digest = hmac.new(bytes(salt), original.encode("ascii", "replace"), hashlib.sha256).digest()
    return f"{UID_ROOT}{int.from_bytes(digest[: _UID_BITS // 8], 'big')}"


def is_class_uid(keyword_or_tag) -> bool:
    """True for attributes (keyword, tag int, BaseTag or (group, element)) whose UIDs must be kept."""
    if isinstance(keyword_or_tag, str):
        return keyword_or_tag in CLASS_UID_KEYWORDS
    try:
        return int(Tag(keyword_or_tag)) in CLASS_UID_TAGS
    except (TypeError, ValueError, OverflowError):
        return False


def is_well_known_uid(value: str) -> bool:
    """True for UIDs registered in PS3.6 (e.g. a standard frame of reference or colour palette): kept as is."""
    text = str(value).strip().rstrip("\x00")
    return bool(text) and UID(text).name != text
