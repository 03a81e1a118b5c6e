"""Convolution blocks of the SAT U-Net (nnU-Net ``ConvDropoutNormReLU`` / ``StackedConvBlocks`` geometry).

Module names follow the official checkpoint: a block holds ``conv`` and ``norm``; a stack holds ``convs``.
The official blocks also store the same conv/norm a second time under ``all_modules``; we do not (the
checkpoint converter checks and drops those aliases).
"""

from __future__ import annotations

import torch
from torch import nn

from bundles.networks.sat.norm_act import instance_norm_leaky_relu

__all__ = ["ConvNormAct", "StackedConvs", "init_he"]

#: nnU-Net's InstanceNorm eps and LeakyReLU slope (official ``model/maskformer.py`` norm_op_kwargs, nonlin).
NORM_EPS = 1e-5
LEAKY_SLOPE = 1e-2


class ConvNormAct(nn.Module):
    """Conv3d(k=3, padding 1, bias) -> InstanceNorm3d(affine) -> LeakyReLU(0.01).

    Input (B, C_in, X, Y, Z) -> output (B, C_out, X/stride, Y/stride, Z/stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=True)
        self.norm = nn.InstanceNorm3d(out_channels, eps=NORM_EPS, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return instance_norm_leaky_relu(x, self.norm.weight, self.norm.bias, NORM_EPS, LEAKY_SLOPE)


class StackedConvs(nn.Module):
    """``n`` :class:`ConvNormAct` blocks; the first maps ``in_channels`` -> ``out_channels`` with ``stride``."""

    def __init__(self, n: int, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.convs = nn.Sequential(
            *(ConvNormAct(in_channels if i == 0 else out_channels, out_channels, stride if i == 0 else 1) for i in range(n))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


def init_he(module: nn.Module, negative_slope: float = LEAKY_SLOPE) -> None:
    """nnU-Net ``InitWeights_He(1e-2)``: Kaiming-normal weights (a = 0.01) and zero biases for every
    (transposed) 3D convolution in ``module``; other layers keep PyTorch's defaults."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            nn.init.kaiming_normal_(m.weight, a=negative_slope)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
