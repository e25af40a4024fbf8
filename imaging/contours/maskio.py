"""Binary masks ⇄ NIfTI (.nii, .nii.gz) and NRRD (.nrrd) files in the CT's patient space.

Research tools (3D Slicer, ITK-SNAP, plastimatch, nnU-Net) exchange masks as image files, and a mask
only means something on the exact voxel grid of its CT. Files are therefore written with the CT's full
geometry and, on reading, checked against it: a file on the same voxels is accepted even if its axes
are stored flipped or permuted (reoriented without resampling); anything else is refused.

Conventions: NIfTI affines map (i, j, k) to RAS millimetres, so LPS x and y change sign; NRRD uses space
"left-posterior-superior" with space directions/origin. On disk the first array axis is the column
(i, fastest varying); in memory masks are (z, y, x) as everywhere in ContourTrial. No Django here.
"""

import os
import uuid
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np

from imaging.geometry import Grid

GEOMETRY_TOLERANCE_MM = 1e-3
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_NRRD_SPACES = {  # space → sign flips taking it to LPS
    "left-posterior-superior": (1, 1, 1),
    "lps": (1, 1, 1),
    "right-anterior-superior": (-1, -1, 1),
    "ras": (-1, -1, 1),
    "left-anterior-superior": (1, -1, 1),
    "las": (1, -1, 1),
}


class MaskFileError(ValueError):
    """A mask file cannot be read or written for this CT; the message names the file and the problem."""


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".nrrd"):
        return "nrrd"
    raise MaskFileError(f"{path.name}: unsupported mask file type; use .nii, .nii.gz or .nrrd.")


def check_file_type(path) -> None:
    """Raise MaskFileError now for a name write_mask/write_map could not write (before hours of work)."""
    _kind(Path(path))


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix


# ------------------------------------------------------------------------------------------------ write


def write_mask(path, mask: np.ndarray, grid: Grid) -> None:
    """Write a (z, y, x) mask as uint8 0/1 on the CT grid; the file appears only once complete."""
    _write(Path(path), np.asarray(mask).astype(bool).astype(np.uint8), grid, "mask")


def write_map(path, values: np.ndarray, grid: Grid) -> None:
    """Write a (z, y, x) float map (probability, uncertainty) as float32 on the CT grid, like write_mask."""
    _write(Path(path), np.asarray(values, dtype=np.float32), grid, "map")


def _write(path: Path, values: np.ndarray, grid: Grid, what: str) -> None:
    kind = _kind(path)
    if values.shape != grid.shape:
        raise MaskFileError(
            f"{path.name}: {what} shape {values.shape} does not match the CT grid {grid.shape} (z, y, x)."
        )
    data = np.ascontiguousarray(values.transpose(2, 1, 0))  # (i, j, k)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}{_suffix(path)}")  # same folder: atomic rename
    try:
        if kind == "nifti":
            ras = _LPS_TO_RAS @ grid.affine
            image = nib.Nifti1Image(data, ras)
            image.set_sform(ras, code=1)  # scanner-based anatomical coordinates
            image.set_qform(ras, code=1)
            image.header.set_xyzt_units("mm")
            image.to_filename(temporary)
        else:
            header = {
                "type": "uint8" if data.dtype == np.uint8 else "float",
                "dimension": 3,
                "space": "left-posterior-superior",
                "space directions": grid.affine[:3, :3].T,  # one row per array axis
                "space origin": grid.affine[:3, 3],
                "kinds": ["domain", "domain", "domain"],
                "encoding": "gzip",
            }
            nrrd.write(str(temporary), data, header, index_order="F")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


# ------------------------------------------------------------------------------------------------- read


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        image = nib.load(path)
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # nibabel raises many kinds on broken files
        raise MaskFileError(f"{path.name}: not a readable NIfTI file ({exc}).") from exc
    if int(image.header["sform_code"]) == 0 and int(image.header["qform_code"]) == 0:
        raise MaskFileError(f"{path.name}: the NIfTI header gives no patient-space orientation (qform/sform code 0).")
    return data, _LPS_TO_RAS @ image.affine  # nibabel's affine: sform if set, else qform


def _read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data, header = nrrd.read(str(path), index_order="F")
    except Exception as exc:  # pynrrd raises its own and numpy errors on broken files
        raise MaskFileError(f"{path.name}: not a readable NRRD file ({exc}).") from exc
    space = str(header.get("space", "")).lower()
    if space not in _NRRD_SPACES or "space directions" not in header or "space origin" not in header:
        raise MaskFileError(
            f"{path.name}: the NRRD header must give space (LPS or RAS), space directions and space origin."
        )
    directions = np.asarray(header["space directions"], dtype=float)
    if directions.shape != (3, 3) or not np.isfinite(directions).all():
        raise MaskFileError(f"{path.name}: expected three spatial axes in space directions, got {directions.tolist()}.")
    flips = np.array(_NRRD_SPACES[space], dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = (directions * flips).T
    affine[:3, 3] = np.asarray(header["space origin"], dtype=float) * flips
    return data, affine


def _align(data: np.ndarray, affine: np.ndarray, grid: Grid, name: str) -> np.ndarray:
    """Reorder (flip/permute) a file's (i, j, k) array onto the CT grid; return it as (z, y, x)."""
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MaskFileError(f"{name}: expected a 3-D mask, got an array of shape {data.shape}.")
    # File axis vectors expressed in CT voxel steps: a signed permutation when both share the voxels.
    steps = np.linalg.solve(grid.affine[:3, :3], affine[:3, :3])
    permutation = np.round(steps)
    is_permutation = (np.abs(permutation).sum(axis=0) == 1).all() and (np.abs(permutation).sum(axis=1) == 1).all()
    if not is_permutation or np.abs(steps - permutation).max() * max(data.shape) * max(grid.spacing) > (
        GEOMETRY_TOLERANCE_MM
    ):
        raise MaskFileError(
            f"{name}: its voxel axes or spacing differ from the CT's (orientation/spacing mismatch); "
            "export the mask on the CT's own grid."
        )
    origin = affine[:3, 3].copy()
    axes = affine[:3, :3].copy()
    for f in range(3):
        if permutation[:, f].sum() < 0:  # stored reversed along this axis
            data = np.flip(data, axis=f)
            origin += (data.shape[f] - 1) * axes[:, f]
            axes[:, f] = -axes[:, f]
    order = [int(np.argmax(np.abs(permutation[g, :]))) for g in range(3)]  # file axis for grid axis i, j, k
    data = np.transpose(data, order)
    axes = axes[:, order]
    expected = (grid.shape[2], grid.shape[1], grid.shape[0])
    if data.shape != expected:
        raise MaskFileError(
            f"{name}: size {'×'.join(map(str, data.shape))} voxels does not match the CT grid "
            f"{'×'.join(map(str, expected))} (columns × rows × slices)."
        )
    corners = np.array(
        [[i, j, k] for i in (0, expected[0] - 1) for j in (0, expected[1] - 1) for k in (0, expected[2] - 1)]
    )
    offset = np.abs((corners @ axes.T + origin) - grid.index_to_patient(corners)).max()
    if offset > GEOMETRY_TOLERANCE_MM:
        raise MaskFileError(
            f"{name}: its voxels lie up to {offset:.3f} mm away from the CT's (origin or spacing mismatch); "
            "export the mask on the CT's own grid."
        )
    return np.ascontiguousarray(data.transpose(2, 1, 0))


def read_mask(path, grid: Grid) -> np.ndarray:
    """A bool (z, y, x) mask from a NIfTI/NRRD file that lies exactly on the CT grid (within 1e-3 mm)."""
    path = Path(path)
    reader = _read_nifti if _kind(path) == "nifti" else _read_nrrd
    if not path.is_file():
        raise MaskFileError(f"{path}: no such file.")
    data, affine = reader(path)
    mask = _align(np.asarray(data), affine, grid, path.name)
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise MaskFileError(f"{path.name}: contains NaN or infinite values; a mask holds 0 and one label value.")
    labels = np.unique(mask[mask != 0])
    if labels.size > 1:
        shown = ", ".join(f"{v:g}" for v in labels[:5])
        raise MaskFileError(
            f"{path.name}: holds several labels ({shown}{', …' if labels.size > 5 else ''}); export one structure "
            "per file (0 = outside, one value = inside)."
        )
    return mask != 0
