"""An axial image volume's sampling in patient space (what the phantom CT and PET are generated on).

Same conventions as imaging.geometry.Grid (array (z, y, x), ImageOrientationPatient [1,0,0,0,1,0],
slices ascending in z), but without UIDs: the writer builds the real Grid from the written datasets.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageGeometry:
    shape: tuple[int, int, int]  # (slices, rows, columns)
    spacing: tuple[float, float, float]  # (slice, row, column) mm
    origin: tuple[float, float, float]  # LPS mm of the centre of voxel (0, 0, 0)

    @property
    def xs(self) -> np.ndarray:
        return self.origin[0] + self.spacing[2] * np.arange(self.shape[2])

    @property
    def ys(self) -> np.ndarray:
        return self.origin[1] + self.spacing[1] * np.arange(self.shape[1])

    @property
    def zs(self) -> np.ndarray:
        return self.origin[2] + self.spacing[0] * np.arange(self.shape[0])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def affine(self) -> np.ndarray:
        """4×4 map from (column, row, slice, 1) to LPS mm, as imaging.geometry.Grid.affine."""
        affine = np.diag([self.spacing[2], self.spacing[1], self.spacing[0], 1.0])
        affine[:3, 3] = self.origin
        return affine

    def index_of(self, xyz: np.ndarray) -> np.ndarray:
        """(N, 3) LPS mm → (N, 3) continuous (z, y, x) array indices."""
        xyz = np.asarray(xyz, dtype=float)
        return ((xyz - np.asarray(self.origin)) / np.asarray(self.spacing[::-1]))[:, ::-1]
