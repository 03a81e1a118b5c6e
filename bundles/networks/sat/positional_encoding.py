"""3D sinusoidal positional encoding of the SAT image tokens (official SAT model/maskformer.py).

Same values as ``positional_encodings.torch_encodings.PositionalEncoding3D(768)`` used by the official
``Maskformer``: each of the three axes gets ``c = ceil(dim / 6) * 2`` channels (256 for dim 768) with inverse
frequencies ``1 / 10000 ** (2k / c)``, k = 0 .. c/2 - 1, laid out interleaved
[sin(p f0), cos(p f0), sin(p f1), cos(p f1), ...]; channels [0, c) encode the first axis, [c, 2c) the second,
[2c, 3c) the third, truncated to ``dim``. Not a parameter: computed from the token grid, cached per grid and
device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["sinusoidal_encoding_3d", "PositionalEncoding3D"]


def _axis_encoding(length: int, channels: int) -> torch.Tensor:
    """(length, channels) interleaved sin/cos of the integer positions 0 .. length-1 (float32)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, channels, 2, dtype=torch.float32) / channels))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


def sinusoidal_encoding_3d(grid: Sequence[int], dim: int = 768) -> torch.Tensor:
    """Positional encoding of a token grid (gx, gy, gz) as a float32 (gx * gy * gz, dim) tensor.

    Rows are in (x, y, z) order with z fastest, i.e. the order of ``tokens.flatten``.
    """
    gx, gy, gz = (int(g) for g in grid)
    c = math.ceil(dim / 6) * 2
    ex, ey, ez = (_axis_encoding(n, c) for n in (gx, gy, gz))
    full = torch.cat(
        (
            ex[:, None, None, :].expand(gx, gy, gz, c),
            ey[None, :, None, :].expand(gx, gy, gz, c),
            ez[None, None, :, :].expand(gx, gy, gz, c),
        ),
        dim=-1,
    )
    return full[..., :dim].reshape(gx * gy * gz, dim)


class PositionalEncoding3D:
    """Callable cache: ``pe(grid, device) -> (N_tok, dim)`` float32, computed once per (grid, device)."""

    def __init__(self, dim: int = 768):
        self.dim = dim
        self._cache: dict[tuple[tuple[int, ...], str], torch.Tensor] = {}

    def __call__(self, grid: Sequence[int], device: torch.device) -> torch.Tensor:
        key = (tuple(int(g) for g in grid), str(device))
        if key not in self._cache:
            self._cache[key] = sinusoidal_encoding_3d(grid, self.dim).to(device)
        return self._cache[key]
