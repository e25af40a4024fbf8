"""The phantom's FDG-PET: physiological uptake and the tumours, in Bq/ml, on the PET's own coarser grid.

The truth is painted from the same analytic anatomy as the CT on a working grid twice as fine as the
PET grid, averaged into PET voxels, blurred with the scanner's Gaussian PSF and given Poisson-like
count noise. Values are SUVs turned into activity concentration decay-corrected to the scan start
(DecayCorrection START), so SUVbw = value × weight / decayed dose recovers them, as in the QIBA
FDG-PET/CT profile.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from . import lesions as lesion_shapes
from .anatomy import Anatomy
from .body import Painter
from .tissues import Tissue
from .volume import ImageGeometry

F18_HALF_LIFE_S = 6586.2
F18_POSITRON_FRACTION = 0.9673
SUBSAMPLE = 2  # working grid points per PET voxel along each axis


@dataclass(frozen=True)
class PetAcquisition:
    weight_kg: float
    height_m: float
    injected_bq: float
    injection: dt.datetime
    ct_start: dt.datetime
    scan_start: dt.datetime  # series reference time; decay correction is to this moment
    bed_seconds: float
    bed_step_mm: float
    fwhm_mm: float
    counts_per_suv: float  # noise level: expected counts per voxel at SUV 1

    @property
    def uptake_seconds(self) -> float:
        return (self.scan_start - self.injection).total_seconds()

    @property
    def decayed_dose_bq(self) -> float:
        return self.injected_bq * 2 ** (-self.uptake_seconds / F18_HALF_LIFE_S)

    @property
    def bq_ml_per_suv(self) -> float:
        """Activity concentration of SUVbw 1 (tissue density 1 g/ml)."""
        return self.decayed_dose_bq / (self.weight_kg * 1000)


@dataclass(frozen=True)
class PetPhantom:
    geometry: ImageGeometry
    activity: np.ndarray  # (z, y, x) float32, Bq/ml at scan start
    acquisition: PetAcquisition
    frame_start_s: np.ndarray  # per slice, seconds after scan start when its bed position began
    suv_max: dict  # "primary" / "node" → SUVmax in voxels at least half lesion

    @property
    def suv(self) -> np.ndarray:
        return self.activity / self.acquisition.bq_ml_per_suv


def draw_acquisition(anatomy: Anatomy) -> PetAcquisition:
    """Dose, timing and scanner settings for seed's PET/CT (dates are synthetic, seed-dependent)."""
    rng = np.random.default_rng([anatomy.seed, 5])
    day = dt.date(2023, 1, 2) + dt.timedelta(days=int(rng.integers(0, 730)))
    scan_start = dt.datetime.combine(day, dt.time(8, 0)) + dt.timedelta(seconds=int(rng.integers(0, 8 * 3600)))
    dose_mbq = float(np.clip(anatomy.weight_kg * rng.uniform(3.2, 4.5), 250, 400))
    return PetAcquisition(
        weight_kg=anatomy.weight_kg, height_m=anatomy.height_m, injected_bq=round(dose_mbq, 1) * 1e6,
        injection=scan_start - dt.timedelta(seconds=int(rng.integers(55 * 60, 70 * 60))),
        ct_start=scan_start - dt.timedelta(seconds=int(rng.integers(150, 400))), scan_start=scan_start,
        bed_seconds=float(rng.choice((120, 150, 180))), bed_step_mm=float(rng.choice((130.0, 150.0, 165.0))),
        fwhm_mm=float(rng.uniform(6.0, 7.0)), counts_per_suv=float(rng.uniform(25, 50)),
    )  # fmt: skip


def pet_geometry(anatomy: Anatomy, ct: ImageGeometry) -> ImageGeometry:
    """Coarser PET grid covering the CT, with its own matrix, slice thickness and origin."""
    rng = np.random.default_rng([anatomy.seed, 6])
    matrix = int(rng.choice((128, 144)))
    pixel = round(float(rng.uniform(4.1, 4.2) if matrix == 128 else rng.uniform(3.9, 4.1)), 4)
    thickness = float(rng.choice((3.0, 3.27, 4.0)))
    ct_bottom, ct_top = ct.zs[0], ct.zs[-1]
    bottom = round(float(ct_bottom - rng.uniform(1, 6)), 2)
    slices = int(np.ceil((ct_top + rng.uniform(1, 6) - bottom) / thickness)) + 1
    ct_centre = float(ct.xs[0] + ct.xs[-1]) / 2, float(ct.ys[0] + ct.ys[-1]) / 2
    half = (matrix - 1) * pixel / 2
    origin = (*(round(c + rng.uniform(-8, 8) - half, 4) for c in ct_centre), bottom)
    return ImageGeometry(shape=(slices, matrix, matrix), spacing=(thickness, pixel, pixel), origin=origin)


def _fine(coords: np.ndarray, step: float) -> np.ndarray:
    """Working-grid coordinates: SUBSAMPLE points evenly inside each PET voxel."""
    offsets = (np.arange(SUBSAMPLE) + 0.5) / SUBSAMPLE - 0.5
    return (coords[:, None] + offsets[None, :] * step).ravel()


def _bin(volume: np.ndarray) -> np.ndarray:
    """Average SUBSAMPLE³ working voxels into one PET voxel."""
    nz, ny, nx = (n // SUBSAMPLE for n in volume.shape)
    s = SUBSAMPLE
    return volume.reshape(nz, s, ny, s, nx, s).mean(axis=(1, 3, 5), dtype=np.float32)


def _box(mask: np.ndarray, margin: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of mask grown by margin voxels, aligned to whole PET voxels."""
    box = []
    for axis, pad in enumerate(margin):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        lo = max(0, (present[0] - int(pad)) // SUBSAMPLE * SUBSAMPLE)
        hi = min(mask.shape[axis], -(-(present[-1] + 1 + int(pad)) // SUBSAMPLE) * SUBSAMPLE)
        box.append(slice(lo, hi))
    return tuple(box)


def build_pet(anatomy: Anatomy, geometry: ImageGeometry, acquisition: PetAcquisition) -> PetPhantom:
    """The patient's FDG uptake on the PET grid, in Bq/ml decay-corrected to the scan start."""
    xs, ys, zs = (
        _fine(c, s) for c, s in zip((geometry.xs, geometry.ys, geometry.zs), geometry.spacing[::-1], strict=True)
    )
    painter = Painter(anatomy.body, xs, ys)
    texture = anatomy.texture.sampler(xs, ys)
    suv_of = anatomy.suv.copy()
    suv_of[[Tissue.PRIMARY, Tissue.NODE]] = 0  # added separately below, scaled to their SUVmax
    background = np.empty((len(zs), len(ys), len(xs)), dtype=np.float32)
    tumour = np.zeros_like(background)  # relative uptake inside the lesions, 0.35 at the rim to 1
    lesion_id = np.zeros(background.shape, dtype=np.uint8)  # 1 + index in anatomy.lesions
    norm = np.zeros((len(ys), len(xs)), dtype=np.float32)
    for k, z in enumerate(zs):
        h = float(z - anatomy.z_offset)
        labels = painter.labels(h)
        norm[:] = 0
        lesion_shapes.paint(labels, painter, anatomy.lesions, h, norm)
        background[k] = suv_of[labels] * (1 + 0.08 * texture.plane(h))
        for index, lesion in enumerate(anatomy.lesions):
            inside = labels == lesion.tissue
            tumour[k][inside] = 0.35 + 0.65 * norm[inside] ** 0.8
            if lesion.kind == "node":
                inside |= labels == Tissue.NECROSIS
            lesion_id[k][inside] = index + 1
    # Binning before blurring (both linear, nearly commuting) keeps the PSF convolution on the coarse grid.
    sigma = acquisition.fwhm_mm / (2 * np.sqrt(2 * np.log(2))) / np.asarray(geometry.spacing)
    suv = gaussian_filter(_bin(background), sigma)
    del background
    masks = []
    for index, lesion in enumerate(anatomy.lesions):
        mine = lesion_id == index + 1
        if not mine.any():
            continue
        box = _box(mine, np.ceil(4 * sigma) * SUBSAMPLE)
        shape = gaussian_filter(_bin(np.where(mine[box], tumour[box], 0)), sigma)
        target = tuple(slice(b.start // SUBSAMPLE, b.stop // SUBSAMPLE) for b in box)
        scale = lesion.suv_max / max(float(shape.max()), 1e-6)
        core = shape >= 0.5 * shape.max()  # its own peak, not a hotter neighbour inside the box
        for _ in range(4):  # the blurred background adds to the lesion's peak
            scale *= lesion.suv_max / float((suv[target] + scale * shape).max(initial=1e-6, where=core))
        suv[target] += scale * shape
        mask = np.zeros(suv.shape, dtype=bool)  # PET voxels at least half lesion
        mask[target] = _bin(mine[box].astype(np.float32)) >= 0.5
        masks.append((lesion.kind, mask))
    rng = np.random.default_rng([anatomy.seed, 7])
    counts = rng.poisson(np.clip(suv, 0, None) * acquisition.counts_per_suv).astype(np.float32)
    suv = gaussian_filter(counts / acquisition.counts_per_suv, 0.5)
    suv_max = {}
    for kind, mask in masks:
        if mask.any():
            suv_max[kind] = max(suv_max.get(kind, 0.0), float(suv[mask].max()))
    beds = np.floor((geometry.zs[-1] - geometry.zs) / acquisition.bed_step_mm)  # head first
    return PetPhantom(
        geometry=geometry, activity=(suv * acquisition.bq_ml_per_suv).astype(np.float32),
        acquisition=acquisition, frame_start_s=beds * acquisition.bed_seconds, suv_max=suv_max,
    )  # fmt: skip
