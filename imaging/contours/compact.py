"""Masks and [0, 1] maps on a CT grid, stored compactly and checked on the way back.

A mask is bit-packed (np.packbits) and a probability or uncertainty map is quantised to 8 bits (steps of
1/255, finer than any threshold a clinician would choose), both zlib-compressed in a small .npz with the
shape, so a 512×512×150 GTV takes kilobytes instead of 40 MB. The sha256 of the unpacked C-order bytes
identifies the content independent of the compression. Pure numpy.
"""

import hashlib
import io

import numpy as np

MAP_LEVELS = 255


class CompactError(ValueError):
    """The stored bytes are not a compact mask or map of the expected kind and shape."""


def mask_sha256(mask: np.ndarray) -> str:
    """sha256 of the mask as C-order uint8 0/1 bytes, with its shape: equal masks, equal hashes."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    digest = hashlib.sha256(repr(tuple(mask.shape)).encode())
    digest.update(np.packbits(mask, axis=None).tobytes())
    return digest.hexdigest()


def pack_mask(mask: np.ndarray) -> bytes:
    mask = np.ascontiguousarray(mask, dtype=bool)
    return _save(kind="mask", shape=mask.shape, data=np.packbits(mask, axis=None))


def unpack_mask(blob: bytes, shape: tuple[int, ...] | None = None) -> np.ndarray:
    stored_shape, data = _load(blob, "mask", shape)
    count = int(np.prod(stored_shape))
    return np.unpackbits(data, count=count).astype(bool).reshape(stored_shape)


def pack_map(values: np.ndarray) -> bytes:
    """A map of values in [0, 1] (probability, entropy in bits) as 8-bit levels."""
    values = np.asarray(values, dtype=np.float32)
    if values.size and (np.nanmin(values) < -1e-6 or np.nanmax(values) > 1 + 1e-6):
        raise CompactError(f"a map must lie in [0, 1]; this one spans {np.nanmin(values):.3g}..{np.nanmax(values):.3g}")
    levels = np.rint(np.clip(np.nan_to_num(values), 0.0, 1.0) * MAP_LEVELS).astype(np.uint8)
    return _save(kind="map", shape=values.shape, data=levels)


def unpack_map(blob: bytes, shape: tuple[int, ...] | None = None) -> np.ndarray:
    stored_shape, data = _load(blob, "map", shape)
    return (data.reshape(stored_shape).astype(np.float32) / MAP_LEVELS).astype(np.float32)


def _save(*, kind: str, shape, data: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, kind=np.array(kind), shape=np.array(shape, dtype=np.int64), data=data)
    return buffer.getvalue()


def _load(blob: bytes, kind: str, shape) -> tuple[tuple[int, ...], np.ndarray]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
            stored_kind, stored_shape, data = (
                str(stored["kind"]),
                tuple(int(n) for n in stored["shape"]),
                stored["data"],
            )
    except Exception as exc:  # zip, npy or key errors: all mean "not ours"
        raise CompactError(f"not a compact {kind} file: {exc}") from exc
    if stored_kind != kind:
        raise CompactError(f"expected a compact {kind}, found a {stored_kind}")
    if shape is not None and tuple(shape) != stored_shape:
        raise CompactError(f"the stored {kind} has shape {stored_shape}, the CT grid is {tuple(shape)}")
    return stored_shape, data
