"""The labelmap wire encoding: exact round trips, small bodies, fast on a full CT grid, every bad body refused."""

import struct
import time
import zlib

import numpy as np
import pytest

from delineation.labelmap_codec import (
    LabelmapError,
    decode,
    decode_runs,
    digest,
    encode,
    labelmap_sha256,
    segment_volumes_cc,
)
from imaging.contours.compact import mask_sha256

GRID = (150, 512, 512)


def runs(*pairs: int) -> bytes:
    """A body from explicit (length, value, length, value, …) numbers, bypassing encode's guarantees."""
    return zlib.compress(np.array(pairs, dtype="<u4").tobytes())


def sphere(shape, centre, radius) -> np.ndarray:
    """A ball of 1s, computed only in its bounding cube so a full CT grid stays quick to build."""
    labels = np.zeros(shape, np.uint8)
    box = tuple(slice(max(c - radius, 0), c + radius + 1) for c in centre)
    z, y, x = np.ogrid[box]
    labels[box] = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2
    return labels


@pytest.mark.parametrize("seed", range(5))
def test_random_labelmaps_round_trip(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 20, size=3))
    labels = rng.choice(3, size=shape, p=[0.7, 0.2, 0.1]).astype(np.uint8)
    decoded = decode(encode(labels), shape, n_segments=2)
    assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    assert np.array_equal(decoded, labels)


@pytest.mark.parametrize("seed", range(40))
def test_runs_give_the_dense_labelmaps_sha256_and_volumes(seed):
    """An autosave hashes and measures the runs without expanding them: the same numbers as the dense labelmap,
    for runs that start and end anywhere in a byte of the packed bits (grids not a multiple of 8 voxels too)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 13, size=3))
    kind = seed % 4
    if kind == 0:  # speckle: runs of one voxel
        labels = rng.choice(3, size=shape, p=[0.5, 0.3, 0.2]).astype(np.uint8)
    elif kind == 1:  # long runs, as a real GTV gives
        labels = np.zeros(shape, np.uint8)
        labels[shape[0] // 3 :, 1:, : max(1, shape[2] - 2)] = 1
        labels[-1, -1, -1] = 2
    elif kind == 2:  # empty or full
        labels = np.full(shape, seed % 3, np.uint8)
    else:  # blocks of random lengths
        flat = np.repeat(rng.integers(0, 3, size=64), rng.integers(1, 30, size=64))[: np.prod(shape)]
        labels = np.resize(flat, shape).astype(np.uint8)
    found = decode_runs(encode(labels), shape, n_segments=2)
    assert np.array_equal(found.labels(), labels)
    assert found.sha256(2) == labelmap_sha256(labels, 2)
    assert found.volumes_cc(2.5, 2) == pytest.approx(segment_volumes_cc(labels, 2.5, 2))


def test_runs_of_a_gtv_on_a_full_ct_grid_are_hashed_without_expanding_them():
    labels = sphere(GRID, (75, 256, 256), 20)
    labels[70:80, 300:320, 300:330] = 2
    blob = encode(labels)
    start = time.perf_counter()
    found = decode_runs(blob, GRID, 2)
    digest_of_runs, volumes = found.sha256(2), found.volumes_cc(1.0, 2)
    elapsed = time.perf_counter() - start
    assert digest_of_runs == labelmap_sha256(labels, 2) and volumes == segment_volumes_cc(labels, 1.0, 2)
    assert elapsed < 0.25  # about 0.02 s here, against 0.1-0.2 s for decode + the dense hash and volumes


def test_body_is_the_documented_runs():
    labels = np.array([[[0, 0, 1], [1, 1, 2]]], dtype=np.uint8)
    raw = zlib.decompress(encode(labels))
    assert np.frombuffer(raw, "<u4").tolist() == [2, 0, 3, 1, 1, 2]


def test_empty_full_and_two_segment_grids():
    shape = (3, 4, 5)
    for labels in (np.zeros(shape, np.uint8), np.ones(shape, np.uint8), np.full(shape, 2, np.uint8)):
        assert np.array_equal(decode(encode(labels), shape, 2), labels)
    assert zlib.decompress(encode(np.zeros(shape, np.uint8))) == struct.pack("<II", 60, 0)
    two = np.zeros(shape, np.uint8)
    two[0, :2] = 1
    two[2, 1:, 3:] = 2
    assert np.array_equal(decode(encode(two), shape, 2), two)


def test_gtv_sphere_on_a_full_ct_grid_is_small_and_fast():
    labels = sphere(GRID, (75, 256, 256), 20)
    labels[70:80, 300:320, 300:330] = 2
    start = time.perf_counter()
    blob = encode(labels)
    encoded = time.perf_counter()
    decoded = decode(blob, GRID, 2)
    decoded_at = time.perf_counter()
    assert np.array_equal(decoded, labels)
    assert len(blob) < 20_000
    # Targets are 0.1 s each; the bound leaves room for a busy test machine.
    assert encoded - start < 0.5 and decoded_at - encoded < 0.5


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        pytest.param(b"certainly not zlib", "not zlib data", id="garbage"),
        pytest.param(encode(np.ones((2, 3, 4), np.uint8))[:-3], "incomplete", id="truncated"),
        pytest.param(encode(np.ones((2, 3, 4), np.uint8)) + b"junk", "4 bytes of trailing data", id="trailing"),
        pytest.param(
            zlib.compress(b"\x18\x00\x00\x00\x01\x00\x00"), "7 bytes, not a whole number of 8-byte", id="odd-length"
        ),
        pytest.param(runs(20, 0, 3, 1), r"the runs cover 23 voxels but the CT grid \(2, 3, 4\) has 24", id="short"),
        pytest.param(runs(20, 0, 5, 1), "the runs cover 25 voxels", id="long"),
        pytest.param(runs(), "the runs cover 0 voxels", id="no-runs"),
        pytest.param(runs(20, 0, 0, 1, 4, 0), "run 2 of 3 is empty", id="zero-run"),
        pytest.param(runs(20, 1, 4, 1), "runs 1 and 2 both have value 1", id="equal-neighbours"),
        pytest.param(runs(20, 0, 4, 3), r"value 3 is not a segment of this trial \(1–2\)", id="foreign-value"),
    ],
)
def test_bad_bodies_are_refused_by_name(blob, message):
    with pytest.raises(LabelmapError, match=message):
        decode(blob, (2, 3, 4), n_segments=2)


def test_a_total_that_overflows_uint32_is_still_refused():
    with pytest.raises(LabelmapError, match="cover 8,589,934,590 voxels"):
        decode(runs(0xFFFFFFFF, 0, 0xFFFFFFFF, 1), (2, 3, 4), n_segments=2)


def test_segment_list_in_message_for_a_one_segment_trial():
    with pytest.raises(LabelmapError, match=r"value 2 is not a segment of this trial \(1\)"):
        decode(runs(20, 0, 4, 2), (2, 3, 4), n_segments=1)


def test_zlib_bomb_is_not_inflated():
    """A valid zlib stream of 1 GiB of zeros: decoding stops after 8 bytes per voxel of the grid."""
    chunk = bytes(1 << 20)
    compressor = zlib.compressobj(9)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor forgets its history, so every further chunk compresses identically.
    again = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    final_block = compressor.flush()[:-4]
    # Adler-32 of n zero bytes is A = 1, B = n mod 65521: the trailer without summing a gigabyte.
    size = 1 << 30
    bomb = first + again * 1023 + final_block + struct.pack(">I", (size % 65521) << 16 | 1)
    start = time.perf_counter()
    with pytest.raises(LabelmapError, match="inflates to more than 192 bytes"):
        decode(bomb, (2, 3, 4), n_segments=2)
    assert time.perf_counter() - start < 0.1


def test_bad_grid_is_refused():
    with pytest.raises(LabelmapError, match="three positive sizes"):
        decode(encode(np.zeros((2, 3, 4), np.uint8)), (24,), n_segments=1)


def test_sha256_of_one_segment_is_imaging_mask_sha256():
    labels = sphere((9, 16, 17), (4, 8, 8), 4)
    assert labelmap_sha256(labels, 1) == mask_sha256(labels == 1)
    two = labels.copy()
    two[0, 0, :3] = 2
    assert labelmap_sha256(two, 2) != labelmap_sha256(labels, 2)
    assert labelmap_sha256(two, 2) == labelmap_sha256(decode(encode(two), two.shape, 2), 2)
    assert labelmap_sha256(labels, 1) != labelmap_sha256(labels.reshape(9, 17, 16), 1)  # same voxels, other grid


def test_segment_volumes_in_cc():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:5] = 1  # 500 voxels
    labels[9, 0, :4] = 2  # 4 voxels
    assert segment_volumes_cc(labels, 2.5 * 0.98 * 0.98, 2) == pytest.approx({"1": 1.2005, "2": 0.009604})
    assert segment_volumes_cc(np.zeros((2, 2, 2), np.uint8), 1.0, 2) == {"1": 0.0, "2": 0.0}


def test_digest_by_hand():
    labels = np.zeros((1, 2, 3), np.uint8)
    labels[0, 0, 2] = 1  # flat index 2
    labels[0, 1, 1] = 2  # flat index 4
    assert digest(labels) == (2, 2 * 1 + 4 * 2)
    assert digest(np.zeros((2, 2, 2), np.uint8)) == (0, 0)


def test_digest_reduces_mod_2_to_the_32():
    labels = np.full((16, 256, 256), 255, np.uint8)  # the true sum is ~10¹⁴, far past 2³²
    n = labels.size
    expected = 255 * (n * (n - 1) // 2) % 2**32  # Python integers: exact
    assert digest(labels) == (n, expected)
