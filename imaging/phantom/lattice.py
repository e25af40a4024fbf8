"""Smooth random fields fixed in patient space, for tissue texture and fat streaks.

The field lives on a coarse lattice in millimetres, not on any image grid, so one seed gives the same
anatomy whatever matrix or slice count it is sampled with. Sampling a plane is separable linear
interpolation by gathers (no BLAS, whose threads thrash on small matrices), about a millisecond for 512².
"""

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class Lattice:
    origin: tuple[float, float, float]  # (x, y, h) mm of values[0, 0, 0]
    step: float  # mm between lattice points on every axis
    values: np.ndarray  # (h, y, x) float32, zero mean and unit standard deviation

    @classmethod
    def random(cls, rng: np.random.Generator, lo: tuple, hi: tuple, step: float, smooth: float = 1.0) -> "Lattice":
        """Gaussian-smoothed white noise covering the box lo..hi = (x, y, h) mm."""
        shape = tuple(int(np.ceil((b - a) / step)) + 2 for a, b in zip(lo[::-1], hi[::-1], strict=True))
        values = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), smooth, mode="wrap")
        values = (values - values.mean()) / values.std()
        return cls(origin=tuple(float(v) for v in lo), step=float(step), values=values.astype(np.float32))

    def _axis(self, coords: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Lower lattice index and interpolation fraction of each coordinate along one axis."""
        n = self.values.shape[2 - axis]
        position = np.clip((np.asarray(coords, dtype=np.float64) - self.origin[axis]) / self.step, 0, n - 1.000001)
        low = np.floor(position).astype(np.intp)
        return low, (position - low).astype(np.float32)

    def sampler(self, xs: np.ndarray, ys: np.ndarray) -> "LatticeSampler":
        return LatticeSampler(self, *self._axis(xs, 0), *self._axis(ys, 1))


@dataclass(frozen=True)
class LatticeSampler:
    lattice: Lattice
    x_low: np.ndarray
    x_frac: np.ndarray
    y_low: np.ndarray
    y_frac: np.ndarray

    def plane(self, h: float) -> np.ndarray:
        """(rows, columns) field on the axial plane at height h."""
        values = self.lattice.values
        position = float(np.clip((h - self.lattice.origin[2]) / self.lattice.step, 0, values.shape[0] - 1.000001))
        low = int(position)
        frac = np.float32(position - low)
        coarse = values[low] * (1 - frac) + values[low + 1] * frac
        fy = self.y_frac[:, None]
        rows = coarse[self.y_low] * (1 - fy) + coarse[self.y_low + 1] * fy
        return rows[:, self.x_low] * (1 - self.x_frac) + rows[:, self.x_low + 1] * self.x_frac
