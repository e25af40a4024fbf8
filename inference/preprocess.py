"""CT (HU) + PET (SUV) on their own grids → the model's two-channel input on its grid, and back again.

The model sees a box around the body only (CT > threshold HU, bounding box + margin) sampled at the model
card's spacing with the CT's orientation, so its voxels do not depend on the scanner's matrix. Downsampling
first smooths with a Gaussian (σ = (factor − 1) / 2 voxels, as skimage's anti-aliasing) so a 512² and a 256²
CT of the same patient give nearly the same input. Pure numpy/scipy plus imaging's resampling; no Django.
"""

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from imaging.dicom.volume import resample
from imaging.geometry import Grid

DEFAULT_CROP = {"ct_threshold_hu": -500.0, "margin_mm": 10.0}


@dataclass(frozen=True)
class ModelInput:
    image: np.ndarray  # (channels, z, y, x) float32, normalised, on `grid`
    grid: Grid  # the model grid: card spacing, CT orientation, centred on the body box
    ct_box: tuple[slice, slice, slice]  # the CT voxels (z, y, x) the model grid covers


def body_box(hu: np.ndarray, spacing: tuple[float, float, float], threshold: float, margin_mm: float):
    """(z, y, x) slices of the CT bounding the voxels above `threshold` HU, grown by `margin_mm`."""
    body = hu > threshold
    if not body.any():
        return tuple(slice(0, n) for n in hu.shape)
    box = []
    for axis in range(3):
        present = np.flatnonzero(body.any(axis=tuple(a for a in range(3) if a != axis)))
        pad = int(np.ceil(margin_mm / spacing[axis]))
        box.append(slice(max(0, int(present[0]) - pad), min(hu.shape[axis], int(present[-1]) + 1 + pad)))
    return tuple(box)


def sub_grid(grid: Grid, box: tuple[slice, slice, slice]) -> Grid:
    """The grid of `array[box]`: same axes and spacing, origin moved to the box's first voxel."""
    start = np.array([[box[2].start, box[1].start, box[0].start]], dtype=float)  # (i, j, k)
    affine = grid.affine.copy()
    affine[:3, 3] = grid.index_to_patient(start)[0]
    shape = tuple(s.stop - s.start for s in box)
    return replace(grid, shape=shape, affine=affine, sop_instance_uids=grid.sop_instance_uids[box[0]])


def model_grid(ct_grid: Grid, box, spacing: tuple[float, float, float]) -> Grid:
    """A grid with the CT's axes at `spacing` (z, y, x) mm covering the box, centred on it."""
    box_grid = sub_grid(ct_grid, box)
    ct_spacing = np.array(ct_grid.spacing)
    target = np.array(spacing, dtype=float)
    shape = np.maximum(1, np.ceil(np.array(box_grid.shape) * ct_spacing / target).astype(int))
    directions = ct_grid.affine[:3, :3] / np.linalg.norm(ct_grid.affine[:3, :3], axis=0)
    affine = np.eye(4)
    affine[:3, :3] = directions * target[::-1]  # columns i, j, k ↔ x, y, z
    centre = box_grid.index_to_patient(((np.array(box_grid.shape) - 1) / 2)[::-1][None])[0]
    affine[:3, 3] = centre - affine[:3, :3] @ ((shape - 1) / 2)[::-1]
    return replace(ct_grid, shape=tuple(int(n) for n in shape), affine=affine, sop_instance_uids=())


def smooth_for(array: np.ndarray, source_spacing, target_spacing) -> np.ndarray:
    """Anti-alias before downsampling: Gaussian σ = (factor − 1) / 2 source voxels on each coarsened axis."""
    factor = np.asarray(target_spacing, dtype=float) / np.asarray(source_spacing, dtype=float)
    sigma = np.maximum(0.0, (factor - 1) / 2)
    if not sigma.any():
        return array.astype(np.float32, copy=False)
    return ndimage.gaussian_filter(array.astype(np.float32), sigma, mode="nearest")


def to_grid(array: np.ndarray, source: Grid, target: Grid, fill: float) -> np.ndarray:
    """Smooth (if coarsening) and trilinearly resample `array` from `source` onto `target`."""
    return resample(smooth_for(array, source.spacing, target.spacing), source, target, order=1, fill=fill)


def normalise(values: np.ndarray, rule: dict) -> np.ndarray:
    """Clip to rule['clip'] then (v − subtract) / divide, as written in the model card."""
    low, high = rule["clip"]
    return ((np.clip(values, low, high) - rule.get("subtract", 0.0)) / rule["divide"]).astype(np.float32)


def prepare(hu: np.ndarray, ct_grid: Grid, suv: np.ndarray, pet_grid: Grid, card: dict) -> ModelInput:
    """CT HU + PET SUV → normalised (CT, PET_SUV) array on the model grid of the body box."""
    if list(card["input_channels"]) != ["CT", "PET_SUV"]:
        raise ValueError(f"This preprocessing makes CT + PET_SUV input, the card asks for {card['input_channels']}.")
    crop = {**DEFAULT_CROP, **card.get("body_crop", {})}
    box = body_box(hu, ct_grid.spacing, crop["ct_threshold_hu"], crop["margin_mm"])
    grid = model_grid(ct_grid, box, tuple(card["target_spacing_mm"]))
    ct = to_grid(hu[box], sub_grid(ct_grid, box), grid, fill=-1024.0)
    pet = to_grid(suv, pet_grid, grid, fill=0.0)
    rules = card["normalisation"]
    image = np.stack([normalise(ct, rules["CT"]), normalise(pet, rules["PET_SUV"])])
    return ModelInput(image=image, grid=grid, ct_box=box)


def to_ct_grid(values: np.ndarray, model_input: ModelInput, ct_grid: Grid) -> np.ndarray:
    """A (z, y, x) map on the model grid (e.g. a probability) → float32 on the full CT grid, 0 outside the box."""
    box = model_input.ct_box
    out = np.zeros(ct_grid.shape, dtype=np.float32)
    out[box] = resample(values.astype(np.float32, copy=False), model_input.grid, sub_grid(ct_grid, box), order=1)
    return out


def mask_to_model_grid(mask: np.ndarray, ct_grid: Grid, model_input: ModelInput) -> np.ndarray:
    """A CT-grid mask as the fraction of each model voxel it covers (smoothed + trilinear): labels, tests."""
    box = model_input.ct_box
    return to_grid(mask[box].astype(np.float32), sub_grid(ct_grid, box), model_input.grid, fill=0.0)
