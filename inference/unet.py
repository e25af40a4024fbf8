"""A small 3-D U-Net for the bundled demo model: few channels so it trains in minutes on two CPU cores.

Instance norm (no running statistics) keeps train and eval mode identical except for dropout, so switching
the TorchScript module to .train() later gives Monte-Carlo dropout samples and .eval() is deterministic.
Dropout sits in the deep, low-resolution stages, where it regularises most and costs least.
"""

import torch
from torch import nn


class ConvBlock(nn.Module):
    """Two 3×3×3 conv → instance norm → leaky ReLU, with optional channel dropout between them."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.InstanceNorm3d(out_channels, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Dropout3d(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.InstanceNorm3d(out_channels, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UpBlock(nn.Module):
    """Transposed-conv upsampling, concatenation with the encoder's skip, then a ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.up = nn.ConvTranspose3d(in_channels, out_channels, 2, stride=2)
        self.block = ConvBlock(2 * out_channels, out_channels, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.up(x), skip], dim=1))


class UNet3d(nn.Module):
    """Encoder–decoder with skip connections; spatial sizes must be divisible by 2**(len(channels) - 1).

    `dropout_from` is the first level (0 = full resolution) whose blocks get dropout, in encoder and decoder.
    Returns logits (N, classes, z, y, x).
    """

    def __init__(
        self,
        in_channels: int = 2,
        classes: int = 2,
        channels: tuple[int, ...] = (8, 16, 32, 64),
        dropout: float = 0.1,
        dropout_from: int = 2,
    ):
        super().__init__()
        drop = [dropout if level >= dropout_from else 0.0 for level in range(len(channels))]
        stages = [ConvBlock(in_channels, channels[0], drop[0])]
        for level in range(1, len(channels)):
            stages.append(nn.Sequential(nn.MaxPool3d(2), ConvBlock(channels[level - 1], channels[level], drop[level])))
        self.encoder = nn.ModuleList(stages)
        self.decoder = nn.ModuleList(
            UpBlock(channels[level + 1], channels[level], drop[level]) for level in range(len(channels) - 2, -1, -1)
        )
        self.head = nn.Conv3d(channels[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = block(x, skips.pop())
        return self.head(x)
