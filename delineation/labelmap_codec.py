"""The wire encoding of a labelmap (docs/DELINEATION.md): zlib of little-endian uint32 [run_length, value] pairs.

Run-length pairs keep a 150×512×512 GTV labelmap at kilobytes on the wire, and the browser can write them with
nothing but typed arrays and CompressionStream. The body comes from a browser, so decoding trusts nothing:
decompression is bounded (no zlib bomb), and every rule of the format is checked and refused with a message
naming the problem. Pure numpy, no Django, so the viewer tests and benchmarks can use it directly.
"""

import hashlib
import zlib

import numpy as np

PAIR = np.dtype("<u4")
BYTES_PER_RUN = 2 * PAIR.itemsize
ZLIB_LEVEL = 6


class LabelmapError(ValueError):
    """The body is not a labelmap in the wire encoding for this CT grid and trial."""


def encode(labels: np.ndarray) -> bytes:
    """zlib of maximal [run_length, value] runs of the C-order voxels; vectorised so a full CT grid takes ms."""
    flat = _as_uint8(labels).ravel()
    if flat.size == 0:
        return zlib.compress(b"", ZLIB_LEVEL)
    # Comparing gives a bool array, which np.flatnonzero scans ten times faster than np.diff's uint8.
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    pairs = np.empty((starts.size, 2), dtype=PAIR)
    pairs[:, 0] = np.diff(np.append(starts, flat.size))
    pairs[:, 1] = flat[starts]
    return zlib.compress(pairs.tobytes(), ZLIB_LEVEL)


class Runs:
    """A validated body: maximal runs (lengths, values) that cover the grid `shape` exactly.

    An autosave needs only the version's sha256 and segment volumes, which the runs give without expanding
    the labelmap (a 150×512×512 grid is 39 M voxels; a GTV a few thousand runs): decoding, hashing and
    measuring a save then costs time in proportion to its runs, not to the CT grid."""

    def __init__(self, lengths: np.ndarray, values: np.ndarray, shape: tuple[int, int, int]):
        self.lengths, self.values, self.shape = lengths, values, shape

    def labels(self) -> np.ndarray:
        """The uint8 (z, y, x) labelmap."""
        return np.repeat(self.values.astype(np.uint8), self.lengths.astype(np.intp)).reshape(self.shape)

    def sha256(self, n_segments: int) -> str:
        """labelmap_sha256 of the labelmap, computed from the runs."""
        voxels = self.shape[0] * self.shape[1] * self.shape[2]
        ends = np.cumsum(self.lengths, dtype=np.int64)
        starts = ends - self.lengths
        hasher = hashlib.sha256(repr(tuple(self.shape)).encode())
        for segment in range(1, n_segments + 1):
            mine = self.values == segment
            hasher.update(_packed_bits(starts[mine], ends[mine], voxels))
        return hasher.hexdigest()

    def volumes_cc(self, voxel_volume_mm3: float, n_segments: int) -> dict[str, float]:
        """segment_volumes_cc of the labelmap, computed from the runs."""
        return {
            str(s): int(self.lengths[self.values == s].sum(dtype=np.uint64)) * voxel_volume_mm3 / 1000.0
            for s in range(1, n_segments + 1)
        }


def decode(blob: bytes, shape: tuple[int, int, int], n_segments: int) -> np.ndarray:
    """The uint8 (z, y, x) labelmap, or LabelmapError naming what is wrong with the body."""
    return decode_runs(blob, shape, n_segments).labels()


def decode_runs(blob: bytes, shape: tuple[int, int, int], n_segments: int) -> Runs:
    """The body's validated runs (every rule of the format checked), or LabelmapError naming what is wrong."""
    shape = _grid(shape)
    voxels = shape[0] * shape[1] * shape[2]
    raw = _inflate(blob, limit=BYTES_PER_RUN * voxels)
    if len(raw) % BYTES_PER_RUN:
        raise LabelmapError(
            f"the runs take {len(raw):,} bytes, not a whole number of {BYTES_PER_RUN}-byte (length, value) pairs"
        )
    pairs = np.frombuffer(raw, dtype=PAIR).reshape(-1, 2)
    lengths, values = pairs[:, 0], pairs[:, 1]
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise LabelmapError(f"run {empty[0] + 1:,} of {len(lengths):,} is empty (length 0); every run needs a voxel")
    repeated = np.flatnonzero(values[1:] == values[:-1])
    if repeated.size:
        i = int(repeated[0])
        raise LabelmapError(
            f"runs {i + 1:,} and {i + 2:,} both have value {values[i]}; neighbouring runs must differ (maximal runs)"
        )
    foreign = np.flatnonzero(values > n_segments)
    if foreign.size:
        segments = f"1–{n_segments}" if n_segments > 1 else ("1" if n_segments == 1 else "none")
        raise LabelmapError(f"value {values[foreign[0]]} is not a segment of this trial ({segments})")
    covered = int(lengths.sum(dtype=np.uint64))
    if covered != voxels:
        raise LabelmapError(f"the runs cover {covered:,} voxels but the CT grid {shape} has {voxels:,}")
    return Runs(lengths, values, shape)


def _packed_bits(starts: np.ndarray, ends: np.ndarray, n_bits: int) -> bytes:
    """np.packbits (big-endian bit order) of an n_bits mask that is set on the disjoint, ascending runs [start, end).

    Each run is split into a head within its first byte, whole bytes, and a tail within its last byte: the whole
    bytes are themselves runs (of 0xFF between runs of 0x00), expanded with one np.repeat over the packed size (an
    eighth of the grid); heads and tails are OR-ed in per run."""
    n_bytes = (n_bits + 7) // 8
    if not starts.size:
        return bytes(n_bytes)
    head_end = np.minimum(ends, (starts + 7) // 8 * 8)
    tail_start = np.maximum(head_end, ends // 8 * 8)
    first_whole, end_whole = head_end // 8, tail_start // 8
    whole = first_whole < end_whole
    first_whole, end_whole = first_whole[whole], end_whole[whole]
    lengths = np.empty(2 * first_whole.size + 1, dtype=np.int64)
    lengths[0:-1:2] = first_whole - np.concatenate(([0], end_whole[:-1]))  # 0x00 before each whole-byte run
    lengths[1::2] = end_whole - first_whole
    lengths[-1] = n_bytes - (end_whole[-1] if end_whole.size else 0)
    values = np.zeros(lengths.size, dtype=np.uint8)
    values[1::2] = 0xFF
    out = np.repeat(values, lengths)
    for lo, hi in ((starts, head_end), (tail_start, ends)):
        part = lo < hi
        lo, hi = lo[part], hi[part]
        byte = lo // 8
        mask = (0xFF >> (lo - byte * 8)) & (0xFF << (byte * 8 + 8 - hi))
        np.bitwise_or.at(out, byte, (mask & 0xFF).astype(np.uint8))
    return out.tobytes()


def labelmap_sha256(labels: np.ndarray, n_segments: int) -> str:
    """sha256 of the shape and each segment's packed bits: for one segment, imaging's mask_sha256 of that mask."""
    labels = np.ascontiguousarray(labels)
    hasher = hashlib.sha256(repr(tuple(labels.shape)).encode())
    for segment in range(1, n_segments + 1):
        hasher.update(np.packbits(labels == segment, axis=None).tobytes())
    return hasher.hexdigest()


def segment_volumes_cc(labels: np.ndarray, voxel_volume_mm3: float, n_segments: int) -> dict[str, float]:
    """Volume of each segment in cm³, keyed "1", "2", … as in the API's volumes_cc."""
    labels = _as_uint8(labels)  # counting per segment: np.bincount would widen 39 M voxels to int64 first
    return {str(s): np.count_nonzero(labels == s) * voxel_volume_mm3 / 1000.0 for s in range(1, n_segments + 1)}


def digest(labels: np.ndarray) -> tuple[int, int]:
    """(nonzero voxels, Σ flat_index·value mod 2³²): the cheap check window.contourTrial.labelmapDigest repeats.

    uint64 products and sums wrap modulo 2⁶⁴, a multiple of 2³², so the low 32 bits are exact.
    """
    flat = _as_uint8(labels).ravel()
    index = np.flatnonzero(flat != 0)  # bool: much faster to scan than uint8
    weighted = index.astype(np.uint64) * flat[index].astype(np.uint64)
    return int(index.size), int(weighted.sum(dtype=np.uint64)) & 0xFFFFFFFF


def _as_uint8(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == np.uint8:
        return np.ascontiguousarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise LabelmapError(f"labels span {labels.min()}..{labels.max()}; segment indices must fit in 0..255")
    return np.ascontiguousarray(labels, dtype=np.uint8)


def _grid(shape) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise LabelmapError(f"a CT grid is three positive sizes (z, y, x), not {shape}")
    return shape


def _inflate(blob: bytes, limit: int) -> bytes:
    """Decompress at most limit bytes: a valid body never inflates past 8 bytes per voxel."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(blob, limit + 1)
    except zlib.error as exc:
        raise LabelmapError(f"not zlib data (deflate, RFC 1950): {exc}") from exc
    if len(raw) > limit:
        raise LabelmapError(
            f"the body inflates to more than {limit:,} bytes, more than any labelmap of this CT grid needs"
        )
    if not inflater.eof:
        raise LabelmapError(f"the zlib stream is incomplete (cut off after {len(blob):,} bytes)")
    if inflater.unused_data:
        raise LabelmapError(f"{len(inflater.unused_data):,} bytes of trailing data after the zlib stream")
    return raw
