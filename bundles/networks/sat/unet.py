"""The plain-convolution U-Net backbone of SAT (official customised ``PlainConvUNet``, official SAT model/maskformer.py).

Encoder: ``n`` stages; stage ``s`` is ``StackedConvs`` (stride 1 for s = 0, else 2) wrapped in a Sequential
(so its keys are ``encoder.stages.{s}.0.convs.{i}.*``). Decoder stage ``s`` (s = 0 lowest resolution):
``ConvTranspose3d`` (kernel = stride = 2) to the skip's channels, concatenation [upsampled, skip], then
``StackedConvs`` mapping 2C -> C. Outputs are feature maps, not logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bundles.networks.sat.conv_blocks import StackedConvs

__all__ = ["PlainConvEncoder", "UNetDecoder", "PlainConvUNet"]


class PlainConvEncoder(nn.Module):
    """Returns the stage outputs (skips) [(B, F0, X, Y, Z), (B, F1, X/2, ...), ..., (B, F5, X/32, ...)]."""

    def __init__(self, in_channels: int, features: Sequence[int], convs_per_stage: int):
        super().__init__()
        self.stages = nn.ModuleList()
        for s, f in enumerate(features):
            prev = in_channels if s == 0 else features[s - 1]
            self.stages.append(nn.Sequential(StackedConvs(convs_per_stage, prev, f, stride=1 if s == 0 else 2)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class UNetDecoder(nn.Module):
    """Upsampling path; ``forward`` consumes the skip list (entries are released as soon as used)."""

    def __init__(self, features: Sequence[int], convs_per_stage: int):
        super().__init__()
        self.stages = nn.ModuleList()  # registered first: the official key order
        self.transpconvs = nn.ModuleList()
        for s in range(1, len(features)):
            below, skip = features[-s], features[-(s + 1)]
            self.transpconvs.append(nn.ConvTranspose3d(below, skip, kernel_size=2, stride=2, bias=True))
            self.stages.append(StackedConvs(convs_per_stage, 2 * skip, skip))

    def forward(self, skips: list[torch.Tensor], all_scales: bool = False) -> list[torch.Tensor]:
        """Args:
            skips: encoder outputs, full resolution first; the list is emptied so memory is freed early.
            all_scales: return every decoder output, not only the full-resolution one.

        Returns:
            decoder feature maps, full resolution first: [(B, F0, X, Y, Z)] or, with ``all_scales``,
            [(B, F0, X, Y, Z), (B, F1, X/2, Y/2, Z/2), ..., (B, F4, X/16, Y/16, Z/16)].
        """
        x = skips.pop()
        outputs = []
        for up, stage in zip(self.transpconvs, self.stages):
            x = torch.cat((up(x), skips.pop()), dim=1)
            x = stage(x)
            if all_scales:
                outputs.append(x)
        return outputs[::-1] if all_scales else [x]


class PlainConvUNet(nn.Module):
    """Encoder + decoder. ``forward(x) -> (skips, decoder features)`` like the official customised U-Net."""

    def __init__(self, in_channels: int, features: Sequence[int], convs_per_stage: int):
        super().__init__()
        self.encoder = PlainConvEncoder(in_channels, features, convs_per_stage)
        self.decoder = UNetDecoder(features, convs_per_stage)

    def forward(self, x: torch.Tensor, all_scales: bool = False) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(B, C_in, X, Y, Z) -> (encoder skips full resolution first, decoder features full resolution first)."""
        skips = self.encoder(x)
        return skips, self.decoder(list(skips), all_scales)
