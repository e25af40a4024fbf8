"""Voxel-wise and per-case uncertainty of a GTV proposal from its ensemble members.

The members (folds, mirrored passes, Monte-Carlo dropout passes) each give a GTV probability; the predictive
entropy of their mean is high where they disagree or where each of them hesitates, which for a segmentation
is the boundary. Binary entropy in bits, so 0 is certain and 1 is a coin toss. Pure numpy.
"""

import numpy as np
from scipy import ndimage

CASE_BAND_VOXELS = 2


def binary_entropy(probability: np.ndarray) -> np.ndarray:
    """H(p) = −p log2 p − (1 − p) log2 (1 − p), float32, 0 where p is 0 or 1."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log2(p), 0.0) + np.where(p < 1, (1 - p) * np.log2(1 - p), 0.0))
    return h.astype(np.float32)


def predictive_entropy(member_probabilities: np.ndarray) -> np.ndarray:
    """Entropy of the mean over axis 0 (the members) of GTV probabilities."""
    return binary_entropy(np.asarray(member_probabilities, dtype=np.float32).mean(axis=0))


def case_score(uncertainty: np.ndarray, mask: np.ndarray, band_voxels: int = CASE_BAND_VOXELS) -> float:
    """Mean voxel entropy over the proposal and a band of `band_voxels` around it: how sure the model is of
    this GTV as a whole, comparable between cases of different size. 0 for an empty proposal with no doubt;
    for an empty proposal, the mean entropy of the voxels with any doubt (> 0.1 bit)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        grown = tuple(slice(max(0, s.start - band_voxels), s.stop + band_voxels) for s in box)
        region = ndimage.binary_dilation(mask[grown], iterations=band_voxels)
        return float(uncertainty[grown][region].mean())
    doubtful = uncertainty > 0.1
    return float(uncertainty[doubtful].mean()) if doubtful.any() else 0.0


def boundary_band(mask: np.ndarray, voxels: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(band within `voxels` of the boundary, inside beyond it, outside beyond it) of a mask; for checks."""
    mask = np.asarray(mask, dtype=bool)
    outer = ndimage.binary_dilation(mask, iterations=voxels)
    inner = ndimage.binary_erosion(mask, iterations=voxels)
    return outer & ~inner, inner, ~outer
