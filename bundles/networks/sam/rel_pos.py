"""Decomposed relative position bias of the ViT image encoder (MViTv2 / ViTDet style, used by every SAM).

Each spatial axis has a learned table ``rel_pos_<axis>`` of shape (2S - 1, head_dim) for a token grid of
side S; the bias between query i and key j along that axis is ``q_i . table[i - j + S - 1]``, and the
attention logits get the sum of the per-axis biases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from bundles.errors import ConfigurationError

__all__ = ["AXIS_NAMES", "RelPosAdder", "lookup", "add_decomposed"]

#: Parameter suffixes of the tables in the official checkpoints: (h, w) in 2D SAM, (d, h, w) in SAM-Med3D.
AXIS_NAMES = ("d", "h", "w")

#: ``(attn (B, N, N), q (B, N, C), per-axis lookups [(S, S, C)], grid (S0, S1, ...)) -> attn``.
RelPosAdder = Callable[[torch.Tensor, torch.Tensor, Sequence[torch.Tensor], tuple[int, ...]], torch.Tensor]


def lookup(table: torch.Tensor, size: int) -> torch.Tensor:
    """(2 * size - 1, C) table -> (size, size, C) with ``[i, j] = table[i - j + size - 1]``.

    Raises:
        ConfigurationError: the table does not fit ``size`` (queries and keys share one grid in SAM's
            encoder, so the official resizing of tables is never needed).
    """
    if table.shape[0] != 2 * size - 1:
        raise ConfigurationError(f"relative position table of length {table.shape[0]} does not fit a grid side of {size}")
    idx = torch.arange(size, device=table.device)
    return table[idx[:, None] - idx[None, :] + size - 1]


def add_decomposed(attn: torch.Tensor, q: torch.Tensor, rel: Sequence[torch.Tensor], grid: tuple[int, ...]) -> torch.Tensor:
    """Add the per-axis biases to attention logits (B, N, N), N = prod(grid), for queries q (B, N, C)."""
    ndim = len(grid)
    letters = "defg"[:ndim]
    b, n, c = q.shape
    r_q = q.reshape(b, *grid, c)
    out = attn.view(b, *grid, *grid)
    for axis, table in enumerate(rel):
        bias = torch.einsum(f"b{letters}c,{letters[axis]}kc->b{letters}k", r_q, table)
        shape = [b, *grid] + [1] * ndim
        shape[1 + ndim + axis] = grid[axis]
        out = out + bias.reshape(shape)
    return out.reshape(b, n, n)
