"""Layer norm over the channel axis of channel-first tensors (SAM's ``LayerNorm2d`` / ``LayerNorm3d``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelLayerNorm"]


class ChannelLayerNorm(nn.Module):
    """Normalise (B, C, *spatial) over C at every voxel, then scale and shift per channel.

    Args:
        num_channels: C.
        eps: added to the variance; 1e-6 in every SAM (segment-anything ``modeling/common.py``,
            SAM-Med3D ``LayerNorm3d``).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return self.weight.view(shape) * x + self.bias.view(shape)
