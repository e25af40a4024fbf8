"""Compact storage of masks and [0, 1] maps: lossless masks, 1/255 maps, clear errors for wrong content."""

import numpy as np
import pytest

from imaging.contours.compact import CompactError, mask_sha256, pack_map, pack_mask, unpack_map, unpack_mask


def test_mask_round_trip_is_exact_and_small():
    rng = np.random.default_rng(0)
    mask = np.zeros((37, 64, 61), dtype=bool)  # odd sizes: bits do not fill the last byte
    mask[10:20, 5:40, 7:30] = True
    mask[rng.random(mask.shape) > 0.999] = True
    blob = pack_mask(mask)
    assert np.array_equal(unpack_mask(blob, mask.shape), mask)
    assert len(blob) < mask.size / 20
    assert mask_sha256(unpack_mask(blob)) == mask_sha256(mask)
    flipped = mask.copy()
    flipped[0, 0, 0] = True
    assert mask_sha256(flipped) != mask_sha256(mask)
    assert mask_sha256(mask.reshape(37, 61, 64)) != mask_sha256(mask)  # same bits, other grid


def test_map_round_trip_within_half_a_level():
    values = np.linspace(0, 1, 5 * 7 * 9, dtype=np.float32).reshape(5, 7, 9)
    restored = unpack_map(pack_map(values), values.shape)
    assert restored.dtype == np.float32 and np.abs(restored - values).max() <= 0.5 / 255 + 1e-7
    assert restored.min() == 0 and restored.max() == 1


def test_wrong_content_is_refused_by_name():
    mask = np.ones((2, 3, 4), dtype=bool)
    with pytest.raises(CompactError, match="CT grid is"):
        unpack_mask(pack_mask(mask), (2, 3, 5))
    with pytest.raises(CompactError, match="expected a compact map, found a mask"):
        unpack_map(pack_mask(mask))
    with pytest.raises(CompactError, match="not a compact mask"):
        unpack_mask(b"not a zip at all")
    with pytest.raises(CompactError, match=r"\[0, 1\]"):
        pack_map(np.array([0.5, 1.5]))
