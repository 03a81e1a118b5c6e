"""Random Fourier position features of SAM's prompt encoder (``PositionEmbeddingRandom``, ``...3D``).

A fixed Gaussian matrix G (ndim, F) (buffer ``positional_encoding_gaussian_matrix``, stored in the
checkpoints) maps coordinates c in [0, 1]^ndim to f = 2 pi (2c - 1) @ G; the encoding is the sequence
[sin f, cos f, sin f, ...] cut to ``out_dim`` channels: [sin, cos] in 2D SAM (F = 128, 256 channels),
[sin, cos, sin] in SAM-Med3D (F = 128, 384 channels; official ``_pe_encoding``).
"""

from __future__ import annotations

import torch
from torch import nn

from bundles.errors import ConfigurationError

__all__ = ["RandomFourierEncoding"]


class RandomFourierEncoding(nn.Module):
    """Args: ndim: coordinates per point; num_feats: F; out_dim: a multiple of F; scale: std of G."""

    def __init__(self, ndim: int, num_feats: int, out_dim: int, scale: float = 1.0) -> None:
        super().__init__()
        if out_dim % num_feats:
            raise ConfigurationError(f"position encoding: out_dim {out_dim} is not a multiple of num_feats {num_feats}")
        self.repeats = out_dim // num_feats
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn(ndim, num_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., ndim) coordinates in [0, 1] -> (..., out_dim)."""
        f = 2 * torch.pi * ((2 * coords - 1) @ self.positional_encoding_gaussian_matrix)
        parts = [torch.sin(f) if i % 2 == 0 else torch.cos(f) for i in range(self.repeats)]
        return torch.cat(parts, dim=-1)

    def dense(self, grid: tuple[int, ...]) -> torch.Tensor:
        """The encoding of every cell centre of ``grid`` -> (out_dim, *grid).

        The coordinate triple at grid index (a0, a1, a2, ...) is ((a1 + 1/2) / S1, (a0 + 1/2) / S0,
        (a2 + 1/2) / S2, ...): the first two axes are swapped, SAM's (x, y) convention for an image
        indexed (row, column). 2D SAM's points are given as (x, y), so the two agree there; SAM-Med3D's
        points are in tensor axis order and its weights were trained with the swap, which is kept.
        """
        axes = [(torch.arange(s, device=self.positional_encoding_gaussian_matrix.device) + 0.5) / s for s in grid]
        mesh = list(torch.meshgrid(*axes, indexing="ij"))
        mesh[0], mesh[1] = mesh[1], mesh[0]
        coords = torch.stack(mesh, dim=-1).to(self.positional_encoding_gaussian_matrix.dtype)
        return self.encode(coords).movedim(-1, 0)
