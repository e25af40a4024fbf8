"""A seeded synthetic head-and-neck patient and its planning CT in HU, with the true GTV.

draw_anatomy(seed) fixes everything about the patient in patient space (body.py, lesions.py); the CT
is that patient sampled on a grid (ct_geometry) with tissue texture, a slight partial-volume blur and
Gaussian noise. Separate random streams per purpose keep the anatomy identical whatever grid or slice
count is asked for. No real patient data is used anywhere.
"""

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from . import lesions as lesion_shapes
from .body import Body, Painter, draw_body
from .lattice import Lattice
from .lesions import Lesion
from .tissues import Tissue, table
from .volume import ImageGeometry

HU_MIN, HU_MAX = -1024, 3071  # 12 stored bits with RescaleIntercept -1024


@dataclass(frozen=True)
class Anatomy:
    seed: int
    body: Body
    lesions: tuple[Lesion, ...]
    z_offset: float  # patient z of h = 0 (the sternal notch), i.e. the couch position
    top: float  # h of the top slice in the default scan
    field_of_view: float  # reconstruction diameter, mm
    centre: tuple[float, float]  # (x, y) of the reconstruction centre
    slice_thickness: float
    slices: int
    hu: np.ndarray  # mean HU per Tissue
    texture_hu: np.ndarray  # texture amplitude per Tissue
    suv: np.ndarray  # physiological SUV per Tissue (lesions: see Lesion.suv_max)
    noise_hu: float
    texture: Lattice
    weight_kg: float
    height_m: float
    sex: str
    age: int

    @property
    def primary(self) -> Lesion:
        return self.lesions[0]

    @property
    def nodes(self) -> tuple[Lesion, ...]:
        return self.lesions[1:]


@dataclass(frozen=True)
class CtPhantom:
    anatomy: Anatomy
    geometry: ImageGeometry
    hu: np.ndarray  # (z, y, x) int16 HU
    primary: np.ndarray  # (z, y, x) bool
    nodes: np.ndarray  # (z, y, x) bool, all nodal GTV

    @property
    def gtv(self) -> np.ndarray:
        return self.primary | self.nodes


def _jitter(rng: np.random.Generator, values: np.ndarray, relative: float) -> np.ndarray:
    return (values * (1 + rng.normal(0, relative, values.shape))).astype(np.float32)


def draw_anatomy(seed: int) -> Anatomy:
    """Everything about phantom patient `seed`, independent of how it is later imaged."""
    rng = np.random.default_rng([seed, 0])
    body = draw_body(rng, np.random.default_rng([seed, 2]))
    lesions = lesion_shapes.draw_lesions(np.random.default_rng([seed, 1]), body)
    lesions = tuple(lesion_shapes.calibrate(lesion, body) for lesion in lesions)
    hu = table(0)
    hu[Tissue.CORTICAL] = rng.uniform(750, 1200)
    hu[Tissue.MARROW] = rng.uniform(200, 350)
    hu[Tissue.VESSEL] = rng.choice((45.0, rng.uniform(120, 200)))  # with or without iodinated contrast
    for tissue in (Tissue.SOFT, Tissue.MUSCLE, Tissue.PAROTID, Tissue.SUBMANDIBULAR, Tissue.LYMPHOID):
        hu[tissue] += rng.normal(0, 4)
    hu[Tissue.PRIMARY] = hu[Tissue.MUSCLE] + rng.uniform(12, 30)  # slightly enhancing
    hu[Tissue.NODE] = hu[Tissue.MUSCLE] + rng.uniform(5, 20)
    size = (body.lateral + body.depth) / 2
    height_m = round(float(rng.uniform(1.55, 1.95)), 2)
    weight = 55 + 45 * (size - 0.9) / 0.22 + rng.normal(0, 4)
    return Anatomy(
        seed=seed, body=body, lesions=lesions, z_offset=float(rng.integers(-900, -300)),
        top=round(float(body.skull_base + rng.uniform(0, 30)) * 2) / 2,
        field_of_view=float(rng.integers(482, 513)), centre=(round(float(rng.uniform(-5, 5)), 1),
                                                            round(float(rng.uniform(20, 40)), 1)),
        slice_thickness=float(rng.choice((2.0, 2.5, 3.0))), slices=int(rng.integers(120, 161)),
        hu=hu, texture_hu=table(1), suv=_jitter(rng, table(2), 0.12), noise_hu=float(rng.uniform(10, 20)),
        texture=Lattice.random(np.random.default_rng([seed, 3]), (-300, -300, -330), (300, 330, 330), step=6.0),
        weight_kg=round(float(np.clip(weight, 55, 100)), 1), height_m=height_m,
        sex=str(rng.choice(("M", "F"), p=(0.75, 0.25))), age=int(rng.integers(42, 83)),
    )  # fmt: skip


def ct_geometry(anatomy: Anatomy, rows: int = 512, slices: int | None = None) -> ImageGeometry:
    """The CT grid: the seed's field of view on `rows`² pixels; fewer slices are centred on the tumour."""
    spacing = round(anatomy.field_of_view / rows, 6)
    thickness = anatomy.slice_thickness
    if slices is None:
        slices, top = anatomy.slices, anatomy.top
    else:
        middle = float(np.mean([lesion.centres[0][2] for lesion in anatomy.lesions]))
        top = round((middle + (slices - 1) * thickness / 2) * 2) / 2
    half = (rows - 1) * spacing / 2
    origin = (
        round(anatomy.centre[0] - half, 4),
        round(anatomy.centre[1] - half, 4),
        anatomy.z_offset + top - (slices - 1) * thickness,
    )
    return ImageGeometry(shape=(slices, rows, rows), spacing=(thickness, spacing, spacing), origin=origin)


def build_ct(anatomy: Anatomy, geometry: ImageGeometry) -> CtPhantom:
    """Sample the patient on the grid: HU (int16) and the primary / nodal GTV masks."""
    xs, ys = geometry.xs, geometry.ys
    painter = Painter(anatomy.body, xs, ys)
    texture = anatomy.texture.sampler(xs, ys)
    rng = np.random.default_rng([anatomy.seed, 4])
    hu = np.empty(geometry.shape, dtype=np.int16)
    primary = np.zeros(geometry.shape, dtype=bool)
    nodes = np.zeros(geometry.shape, dtype=bool)
    plane_shape = geometry.shape[1:]
    for k, z in enumerate(geometry.zs):
        h = float(z - anatomy.z_offset)
        labels = painter.labels(h)
        lesion_shapes.paint(labels, painter, anatomy.lesions, h)
        values = anatomy.hu[labels] + anatomy.texture_hu[labels] * texture.plane(h)
        values = gaussian_filter(values, 0.6)  # the scanner's in-plane resolution
        values += anatomy.noise_hu * rng.standard_normal(plane_shape, dtype=np.float32)
        hu[k] = np.clip(np.rint(values), HU_MIN, HU_MAX)
        primary[k] = labels == Tissue.PRIMARY
        nodes[k] = (labels == Tissue.NODE) | (labels == Tissue.NECROSIS)
    return CtPhantom(anatomy=anatomy, geometry=geometry, hu=hu, primary=primary, nodes=nodes)
