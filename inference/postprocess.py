"""Binary GTV from a probability map, then connected-component clean-up as stated in the model card.

A GTV here is a primary and at most a node or two, so keeping the few largest components of at least a
minimum volume removes isolated false positives (hot physiological uptake) without touching real lesions.
"""

import numpy as np
from scipy import ndimage

DEFAULT_POSTPROCESSING = {"threshold": 0.5, "max_components": 3, "min_component_ml": 0.5}


def keep_components(mask: np.ndarray, spacing, max_components: int, min_component_ml: float) -> np.ndarray:
    """The `max_components` largest 26-connected components of at least `min_component_ml` millilitres."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    box = ndimage.find_objects(mask.astype(np.uint8))[0]  # label only the occupied box: CT grids are large
    labels, count = ndimage.label(mask[box], structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    order = np.argsort(-sizes, kind="stable")[:max_components]
    kept = [index + 1 for index in order if sizes[index] * voxel_ml >= min_component_ml]
    out = np.zeros_like(mask)
    out[box] = np.isin(labels, kept)
    return out


def binarise(probability: np.ndarray, spacing, rules: dict | None = None) -> np.ndarray:
    """Threshold the foreground probability, then keep_components with the card's rules."""
    rules = {**DEFAULT_POSTPROCESSING, **(rules or {})}
    mask = probability >= rules["threshold"]
    return keep_components(mask, spacing, int(rules["max_components"]), float(rules["min_component_ml"]))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Sørensen–Dice overlap of two masks; 1.0 when both are empty."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total
