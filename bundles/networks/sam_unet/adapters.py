"""SAM-UNet's adapters between the CNN branch, the frozen ViT and the decoder (Yang et al., arXiv 2408.09886v1;
module names as in Hhankyangg/sam-unet: ``Reshaper``, ``adapters_bridge``, ``embedding_encoder``).

- :class:`Reshaper`: a CNN feature (C, H, H) -> the ViT's token grid (D, G, G): halve the size with
  [conv 3x3 stride 2 (C -> 2C), layer norm, GELU] or double it with [transposed conv 2x2 stride 2 (C -> C/2),
  layer norm, GELU] until H = G, then a 1x1 conv to D; Kaiming-normal (fan-out) initialisation.
- :func:`upscaler`: ViT tokens or the image embedding (C, G, G) -> the decoder's mask-feature grid
  (out, 4G, 4G): [transposed conv 2x2 s2 (C -> hidden), layer norm, GELU, transposed conv 2x2 s2 (hidden -> out)].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bundles.errors import ConfigurationError
from bundles.networks.sam.layer_norm import ChannelLayerNorm

__all__ = ["Reshaper", "upscaler"]


class Reshaper(nn.Module):
    """(B, in_chans, size, size) -> (B, out_chans, grid, grid); sizes must differ by a power of two.

    Raises:
        ConfigurationError: ``size`` / ``grid`` is not a power of two.
    """

    def __init__(self, in_chans: int, size: int, grid: int, out_chans: int) -> None:
        super().__init__()
        ratio = size / grid
        steps = round(abs(math.log2(ratio)))
        if 2**steps != max(ratio, 1 / ratio):
            raise ConfigurationError(f"SAM-UNet adapter: feature side {size} and token grid {grid} differ by no power of two")
        layers: list[nn.Module] = []
        chans = in_chans
        for _ in range(steps):
            if ratio > 1:
                layers += [nn.Conv2d(chans, chans * 2, 3, stride=2, padding=1), ChannelLayerNorm(chans * 2), nn.GELU()]
                chans *= 2
            else:
                layers += [nn.ConvTranspose2d(chans, chans // 2, 2, stride=2), ChannelLayerNorm(chans // 2), nn.GELU()]
                chans //= 2
        layers.append(nn.Conv2d(chans, out_chans, 1))
        self.reshaper = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reshaper(x)


def upscaler(in_chans: int, hidden: int, out_chans: int) -> nn.Sequential:
    """(B, in_chans, G, G) -> (B, out_chans, 4G, 4G) (keys ``0``, ``1``, ``3``)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_chans, hidden, 2, stride=2),
        ChannelLayerNorm(hidden),
        nn.GELU(),
        nn.ConvTranspose2d(hidden, out_chans, 2, stride=2),
    )
