"""Tumours: a lobulated primary beside the airway and, for about half the seeds, a neck node.

A lesion is an implicit surface: a sum of anisotropic Gaussians (the lobes) modulated by a few plane
waves (the irregular margin), cut off at a threshold. The threshold is calibrated once, on a 1 mm grid
in patient space and counting only tissue a tumour can invade, so that the lesion's volume hits its
drawn target on every image grid it is later sampled on.
"""

from dataclasses import dataclass, replace

import numpy as np

from .body import Body, Painter
from .tissues import INVADABLE, Tissue

# name: (probability, h range in anatomical mm, lateralised)
PRIMARY_SITES = {
    "tonsil": (0.35, (128, 146), True),
    "base of tongue": (0.25, (108, 124), False),
    "supraglottic larynx": (0.2, (82, 96), False),
    "hypopharynx": (0.2, (80, 96), True),
}
CALIBRATION_STEP_MM = 1.5
_INVADABLE = np.zeros(256, dtype=bool)
_INVADABLE[list(INVADABLE)] = True


@dataclass(frozen=True)
class Lesion:
    kind: str  # "primary" or "node"
    site: str
    side: str  # "left", "right" or "midline" (patient's side)
    tissue: Tissue
    centres: np.ndarray  # (K, 3) lobe centres (x, y, h) mm
    sigmas: np.ndarray  # (K, 3) lobe widths mm
    weights: np.ndarray  # (K,)
    waves: np.ndarray  # (J, 3) wave vectors, rad/mm
    phases: np.ndarray  # (J,)
    wobble: float
    target_ml: float
    suv_max: float  # intended SUVmax in the blurred, noisy PET
    necrosis: float  # normalised field above which the core is necrotic; > 1: no necrosis
    threshold: float = 0.0
    peak: float = 1.0

    @property
    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y, h) corners outside which the field is negligible."""
        return (self.centres - 3.5 * self.sigmas).min(axis=0), (self.centres + 3.5 * self.sigmas).max(axis=0)

    def field(self, gx: np.ndarray, gy: np.ndarray, h: float) -> np.ndarray:
        """Implicit function on a plane; gx is a (1, n) row and gy an (m, 1) column of mm coordinates."""
        total = np.zeros(np.broadcast_shapes(gx.shape, gy.shape), dtype=np.float32)
        for (cx, cy, ch), (sx, sy, sh), w in zip(self.centres, self.sigmas, self.weights, strict=True):
            gh = w * np.exp(-0.5 * ((h - ch) / sh) ** 2)
            if gh > 1e-5:
                total += gh * np.exp(-0.5 * ((gy - cy) / sy) ** 2) * np.exp(-0.5 * ((gx - cx) / sx) ** 2)
        ripple = np.zeros_like(total)
        for (kx, ky, kh), phase in zip(self.waves, self.phases, strict=True):
            along_x, rest = kx * gx, ky * gy + kh * h + phase
            ripple += np.cos(along_x) * np.cos(rest) - np.sin(along_x) * np.sin(rest)
        return total * (1 + self.wobble * ripple / len(self.phases))

    def normalised(self, values: np.ndarray) -> np.ndarray:
        """0 at the surface, 1 at the hottest point."""
        return np.clip((values - self.threshold) / (self.peak - self.threshold), 0, 1)


def _blob(rng, kind, site, side, tissue, centre, volume_ml, lobes, spread, width, suv, necrosis) -> Lesion:
    radius = (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    elongation = np.array([1.0, 1.0, rng.uniform(1.0, 1.4)])
    offsets = rng.normal(0, spread * radius, (lobes, 3)) * elongation
    offsets[0] = 0
    sigmas = radius * rng.uniform(*width, (lobes, 3)) * elongation
    weights = rng.uniform(0.6, 1.0, lobes)
    weights[0] = 1.0
    directions = rng.normal(size=(5, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    waves = directions * (2 * np.pi / rng.uniform(10, 22, (5, 1)))
    return Lesion(
        kind=kind, site=site, side=side, tissue=tissue, centres=np.asarray(centre) + offsets, sigmas=sigmas,
        weights=weights, waves=waves, phases=rng.uniform(0, 2 * np.pi, 5), wobble=rng.uniform(0.1, 0.25),
        target_ml=float(volume_ml), suv_max=float(suv), necrosis=necrosis,
    )  # fmt: skip


def draw_lesions(rng: np.random.Generator, body: Body) -> list[Lesion]:
    """The primary, and for about half the seeds a level II/III node on the primary's side."""
    names = list(PRIMARY_SITES)
    site = names[rng.choice(len(names), p=[PRIMARY_SITES[n][0] for n in names])]
    _, (h_lo, h_hi), lateralised = PRIMARY_SITES[site]
    h = rng.uniform(h_lo, h_hi) * body.neck
    sign = int(rng.choice((-1, 1)))
    lv = body.level(h)
    if site == "tonsil":
        centre = (lv.x_air + sign * (lv.air_lat + 5), lv.y_air + 1, h)
    elif site == "base of tongue":
        centre = (lv.x_air + rng.uniform(-4, 4), lv.y_air - lv.air_ap - 8, h)
    elif site == "supraglottic larynx":
        centre = (lv.x_air + rng.uniform(-5, 5), lv.y_air - 0.5 * lv.air_ap - 4, h)
    else:
        centre = (lv.x_air + sign * (lv.air_lat + 7), lv.y_air + 4, h)
    side = ("right" if sign < 0 else "left") if lateralised else "midline"
    volume = float(np.exp(rng.uniform(np.log(5), np.log(60))))
    lesions = [
        _blob(rng, "primary", site, side, Tissue.PRIMARY, centre, volume, int(rng.integers(3, 7)), 0.35,
              (0.35, 0.6), rng.uniform(8.5, 19), 2.0)
    ]  # fmt: skip
    if rng.random() < 0.5:
        level = "II" if rng.random() < 0.6 else "III"
        h = rng.uniform(110, 138) * body.neck if level == "II" else rng.uniform(75, 105) * body.neck
        node_sign = sign if lateralised else int(rng.choice((-1, 1)))
        lv = body.level(h)
        centre = (lv.cx + node_sign * (lv.vb_lat + rng.uniform(24, 30)), lv.y_vb - rng.uniform(14, 22), h)
        necrosis = rng.uniform(0.55, 0.75) if rng.random() < 0.3 else 2.0
        node_volume = float(np.exp(rng.uniform(np.log(1.5), np.log(15))))
        lesions.append(
            _blob(rng, "node", f"level {level}", "right" if node_sign < 0 else "left", Tissue.NODE, centre,
                  node_volume, int(rng.integers(2, 4)), 0.2, (0.5, 0.65), rng.uniform(4.5, 10), necrosis)
        )  # fmt: skip
    return lesions


def calibrate(lesion: Lesion, body: Body, step: float = CALIBRATION_STEP_MM) -> Lesion:
    """Set the threshold so the invadable part of the lesion has its target volume."""
    lo, hi = lesion.box
    xs, ys, hs = (np.arange(a, b + step, step) for a, b in zip(lo, hi, strict=True))
    painter = Painter(body, xs, ys)
    gx, gy = xs[None, :].astype(np.float32), ys[:, None].astype(np.float32)
    peak, allowed = 0.0, []
    for h in hs:
        values = lesion.field(gx, gy, float(h))
        peak = max(peak, float(values.max()))
        allowed.append(values[_INVADABLE[painter.labels(float(h))]])
    ranked = np.sort(np.concatenate(allowed))[::-1]
    wanted = round(lesion.target_ml * 1000 / step**3)
    threshold = float(ranked[min(wanted, len(ranked) - 1)])
    return replace(lesion, threshold=max(threshold, 0.02 * peak), peak=peak)


def paint(labels: np.ndarray, painter: Painter, lesions, h: float, norm: np.ndarray | None = None) -> None:
    """Overwrite invadable labels with lesion tissue; optionally record each voxel's normalised field."""
    for lesion in lesions:
        lo, hi = lesion.box
        if not lo[2] <= h <= hi[2]:
            continue
        found = painter.window(lo[0], hi[0], lo[1], hi[1])
        if found is None:
            continue
        win, gx, gy = found
        values = lesion.field(gx, gy, h)
        view = labels[win]
        inside = (values >= lesion.threshold) & _INVADABLE[view]
        view[inside] = lesion.tissue
        level = lesion.normalised(values)
        view[inside & (level >= lesion.necrosis)] = Tissue.NECROSIS
        if norm is not None:
            norm[win][inside] = level[inside]
