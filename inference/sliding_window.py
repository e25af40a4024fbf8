"""Sliding-window inference over a whole volume with Gaussian-weighted blending and optional mirroring TTA.

Tiles overlap by `overlap` (0.5 as nnU-Net); each tile's softmax is weighted by a Gaussian centred on the
tile (σ = sigma_scale × patch) so tile borders, where the network sees least context, count least. Each
mirroring member (identity first, then every flip combination of `mirror_axes`) is blended separately and
returned as its own probability map, so the caller can average them or compute entropy / disagreement.
Pure torch; CUDA uses bf16 autocast, CPU float32. The model's train/eval mode is left to the caller
(eval: deterministic; train: Monte-Carlo dropout).
"""

import itertools
import os
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class WindowResult:
    members: torch.Tensor  # (members, classes, z, y, x) float32 probabilities on the CPU
    flips: tuple[tuple[int, ...], ...]  # spatial axes (0 = z) flipped for each member

    @property
    def mean(self) -> torch.Tensor:
        """(classes, z, y, x) average over the members."""
        return self.members.mean(dim=0)


def cpu_threads() -> int:
    """Cores this process may use (the affinity mask, which containers restrict), not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gaussian_weights(patch: tuple[int, ...], sigma_scale: float = 0.125) -> torch.Tensor:
    """Separable Gaussian importance map peaking at 1 in the centre; never 0, so every voxel gets a weight."""
    weights = torch.ones(patch, dtype=torch.float32)
    for axis, size in enumerate(patch):
        coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        profile = torch.exp(-0.5 * (coords / max(sigma_scale * size, 1e-6)) ** 2)
        shape = [1] * len(patch)
        shape[axis] = size
        weights = weights * profile.reshape(shape)
    weights = weights / weights.max()
    return weights.clamp_min(float(weights[weights > 0].min()))


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Evenly spread tile starts covering [0, size) with steps of at most (1 − overlap) × patch."""
    if size <= patch:
        return [0]
    step = max(1.0, patch * (1.0 - overlap))
    count = int(np.ceil((size - patch) / step)) + 1
    return [round(i * (size - patch) / (count - 1)) for i in range(count)]


def mirror_members(mirror_axes: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Identity first, then each non-empty combination of the axes (2**k members)."""
    return tuple(c for r in range(len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, r))


def _pad(image: torch.Tensor, patch: tuple[int, ...]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Pad each channel with its own minimum (air, zero uptake) up to the patch size, centred."""
    short = [max(0, p - s) for p, s in zip(patch, image.shape[1:], strict=True)]
    if not any(short):
        return image, tuple(slice(0, s) for s in image.shape[1:])
    padded_shape = (image.shape[0], *(s + d for s, d in zip(image.shape[1:], short, strict=True)))
    floor = image.reshape(image.shape[0], -1).amin(dim=1)
    padded = floor.reshape(-1, 1, 1, 1).expand(padded_shape).clone()
    inner = tuple(slice(d // 2, d // 2 + s) for d, s in zip(short, image.shape[1:], strict=True))
    padded[(slice(None), *inner)] = image
    return padded, inner


@torch.no_grad()
def sliding_window(
    model: torch.nn.Module,
    image,
    patch: tuple[int, int, int],
    *,
    overlap: float = 0.5,
    mirror_axes: tuple[int, ...] = (),
    sigma_scale: float = 0.125,
    batch_size: int = 4,
    device: torch.device | str | None = None,
    threads: int | None = None,
) -> WindowResult:
    """Softmax probabilities of `model` over a (channels, z, y, x) image, per mirroring member.

    `mirror_axes` are spatial axes (0 = z, 1 = y, 2 = x). On the CPU, torch uses `threads` (default: the
    cores this process may use).
    """
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cpu":
        torch.set_num_threads(threads or cpu_threads())
    image = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image, dtype=torch.float32)
    patch = tuple(int(p) for p in patch)
    image, inner = _pad(image, patch)
    spatial = tuple(image.shape[1:])
    weights = gaussian_weights(patch, sigma_scale).to(device)
    flips = mirror_members(tuple(mirror_axes))
    tiles = [
        tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))
        for start in itertools.product(*(window_starts(n, p, overlap) for n, p in zip(spatial, patch, strict=True)))
    ]
    members: torch.Tensor | None = None
    norm = torch.zeros(spatial, dtype=torch.float32, device=device)
    for tile in tiles:
        norm[tile] += weights
    source = image.to(device)
    for first in range(0, len(tiles), batch_size):
        batch_tiles = tiles[first : first + batch_size]
        batch = torch.stack([source[(slice(None), *tile)] for tile in batch_tiles])
        for index, axes in enumerate(flips):
            dims = [a + 2 for a in axes]
            x = batch.flip(dims) if dims else batch
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x)
            probs = torch.softmax(logits.float(), dim=1)
            if dims:
                probs = probs.flip(dims)
            if members is None:
                members = torch.zeros((len(flips), probs.shape[1], *spatial), dtype=torch.float32, device=device)
            for tile, p in zip(batch_tiles, probs, strict=True):
                members[(index, slice(None), *tile)] += p * weights
    members = members / norm
    return WindowResult(members=members[(slice(None), slice(None), *inner)].cpu(), flips=flips)
