"""Sliding-window blending: tiles, Gaussian weights, mirroring members and agreement with a single forward pass."""

import itertools

import pytest
import torch

from inference.sliding_window import gaussian_weights, mirror_members, sliding_window, window_starts
from inference.unet import UNet3d


class Constant(torch.nn.Module):
    """Logits independent of the input: blending must give the same probability everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.tensor([0.3, -1.2]).reshape(1, 2, 1, 1, 1)
        return logits.expand(x.shape[0], 2, *x.shape[2:]).clone()


class PassThrough(torch.nn.Module):
    """Logit 1 = the first input channel, so the output depends on where each tile was taken from."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :1]], dim=1)


@pytest.mark.parametrize(("size", "patch", "overlap"), [(100, 32, 0.5), (33, 32, 0.25), (32, 32, 0.5), (200, 64, 0.0)])
def test_window_starts_cover_the_axis_with_the_requested_overlap(size, patch, overlap):
    starts = window_starts(size, patch, overlap)
    assert starts[0] == 0 and starts[-1] == size - patch
    steps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(0 < step <= patch * (1 - overlap) + 1e-9 for step in steps) or len(starts) == 1


def test_gaussian_weights_peak_in_the_centre_and_are_never_zero():
    weights = gaussian_weights((8, 16, 16))
    assert float(weights.max()) == pytest.approx(1.0)
    assert float(weights.min()) > 0
    assert float(weights[4, 8, 8]) > float(weights[0, 0, 0])


def test_mirror_members_start_with_the_identity():
    assert mirror_members(()) == ((),)
    assert mirror_members((2,)) == ((), (2,))
    assert len(mirror_members((0, 1, 2))) == 8


def test_constant_model_gives_a_constant_blended_output():
    image = torch.randn(2, 37, 50, 45)
    result = sliding_window(Constant(), image, (16, 32, 32), overlap=0.5, mirror_axes=(1, 2), device="cpu")
    expected = torch.softmax(torch.tensor([0.3, -1.2]), dim=0)
    assert result.members.shape == (4, 2, 37, 50, 45)
    assert torch.allclose(result.members, expected.reshape(1, 2, 1, 1, 1).expand_as(result.members), atol=1e-6)


def test_position_dependent_model_is_stitched_back_in_place():
    """Every tile sees the same voxels at the same place, so blending a pointwise model reproduces it exactly."""
    image = torch.randn(1, 40, 70, 50)
    result = sliding_window(PassThrough(), image, (16, 32, 32), overlap=0.5, mirror_axes=(2,), device="cpu")
    expected = torch.sigmoid(image[0])
    for member in result.members:
        assert torch.allclose(member[1], expected, atol=1e-5)


def test_input_of_patch_size_equals_a_single_forward_pass():
    torch.manual_seed(0)
    model = UNet3d().eval()
    image = torch.randn(2, 16, 32, 32)
    result = sliding_window(model, image, (16, 32, 32), overlap=0.5, device="cpu")
    with torch.no_grad():
        expected = torch.softmax(model(image[None]), dim=1)[0]
    assert torch.allclose(result.mean, expected, atol=1e-5)


def test_input_smaller_than_the_patch_is_padded_and_cropped_back():
    torch.manual_seed(0)
    image = torch.randn(2, 10, 20, 30)
    result = sliding_window(UNet3d().eval(), image, (16, 32, 32), device="cpu")
    assert result.members.shape == (1, 2, 10, 20, 30)
    assert torch.allclose(result.members.sum(dim=1), torch.ones(10, 20, 30), atol=1e-5)


def test_mirroring_returns_one_map_per_member_and_eval_mode_is_deterministic():
    torch.manual_seed(0)
    model = UNet3d().eval()
    image = torch.randn(2, 24, 40, 40)
    first = sliding_window(model, image, (16, 32, 32), mirror_axes=(2,), device="cpu")
    second = sliding_window(model, image, (16, 32, 32), mirror_axes=(2,), device="cpu")
    assert first.flips == ((), (2,))
    assert first.members.shape == (2, 2, 24, 40, 40)
    assert torch.equal(first.members, second.members)
    assert not torch.allclose(first.members[0], first.members[1])  # a random network is not mirror-symmetric
