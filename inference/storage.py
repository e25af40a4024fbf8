"""Read a stored AI proposal's mask and maps back, checked against the CT grid shape and the recorded hash."""

import numpy as np

from imaging.contours.compact import mask_sha256, unpack_map, unpack_mask

from .models import AIContour


class StoredProposalError(ValueError):
    """The stored file does not match what was recorded (changed on disk)."""


def read_mask(contour: AIContour) -> np.ndarray:
    with contour.mask_file.open("rb") as handle:
        mask = unpack_mask(handle.read(), tuple(contour.shape))
    if mask_sha256(mask) != contour.mask_sha256:
        raise StoredProposalError(f"The stored AI mask of {contour.patient} differs from its recorded sha256.")
    return mask


def read_map(contour: AIContour, kind: str) -> np.ndarray:
    field = {"probability": contour.probability_file, "uncertainty": contour.uncertainty_file}[kind]
    with field.open("rb") as handle:
        return unpack_map(handle.read(), tuple(contour.shape))
