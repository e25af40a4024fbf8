"""In-memory phantom PET/CT cases (imaging.phantom) as Grid-registered arrays, for training and tests.

Skips the DICOM round trip: the arrays are what load_volume / load_suv_volume would return for the files
write_phantom writes (CT in HU, PET in SUVbw), on grids in the same (z, y, x) LPS convention.
"""

from dataclasses import dataclass

import numpy as np

from imaging.geometry import Grid
from imaging.phantom.anatomy import build_ct, ct_geometry, draw_anatomy
from imaging.phantom.pet import build_pet, draw_acquisition, pet_geometry
from imaging.phantom.volume import ImageGeometry


@dataclass(frozen=True)
class PhantomCase:
    seed: int
    hu: np.ndarray  # (z, y, x) HU on ct_grid
    ct_grid: Grid
    suv: np.ndarray  # (z, y, x) SUVbw on pet_grid
    pet_grid: Grid
    gtv: np.ndarray  # (z, y, x) bool on ct_grid, the true GTV


def as_grid(geometry: ImageGeometry) -> Grid:
    """The phantom geometry as an imaging Grid without UIDs (resample accepts an empty frame of reference)."""
    return Grid(
        shape=tuple(geometry.shape), affine=geometry.affine, frame_of_reference_uid="", study_instance_uid="",
        series_instance_uid="", sop_instance_uids=(),
    )  # fmt: skip


def phantom_case(seed: int, rows: int = 512, slices: int | None = None) -> PhantomCase:
    """Phantom `seed` imaged as write_phantom(seed, rows=rows, slices=slices) would, but kept in memory."""
    anatomy = draw_anatomy(seed)
    ct = build_ct(anatomy, ct_geometry(anatomy, rows=rows, slices=slices))
    pet = build_pet(anatomy, pet_geometry(anatomy, ct.geometry), draw_acquisition(anatomy))
    return PhantomCase(
        seed=seed, hu=ct.hu, ct_grid=as_grid(ct.geometry), suv=pet.suv.astype(np.float32),
        pet_grid=as_grid(pet.geometry), gtv=ct.gtv,
    )  # fmt: skip
