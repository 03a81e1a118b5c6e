"""Non-overlapping windows over a channel-last token grid, padded to a whole number of windows.

SAM pads the normalised tokens with zeros before its attention's qkv layer, so the padding takes part in
the attention as keys and values (no mask): segment-anything ``window_partition`` in ``image_encoder.py``;
SAM-Med3D's weights depend on it (its 8³ grid is padded to one 14³ window, ``image_encoder3D.py``). The
encoder here applies qkv to the real tokens only and pads its output with ``fill``, the qkv of a zero
token: the same keys and values, without running the layer on padding (in SAM-Med3D's windowed blocks
5.4x as many tokens as the grid holds).
"""

from __future__ import annotations

import math

import torch

__all__ = ["partition", "unpartition"]


def partition(x: torch.Tensor, window: int, fill: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[int, ...]]:
    """(B, *grid, C) -> (B * n_windows, *(window,) * ndim, C) and the padded grid size.

    Each spatial axis is padded at its end to a multiple of ``window`` with zeros, or with ``fill`` (C,)
    in every padding token; windows are ordered with the last axis fastest.
    """
    b, *grid, c = x.shape
    padded = tuple(g + (-g) % window for g in grid)
    if padded != tuple(grid):
        out = x.new_zeros(b, *padded, c) if fill is None else fill.to(x.dtype).expand(b, *padded, c).clone()
        out[(slice(None),) + tuple(slice(0, g) for g in grid)] = x
        x = out
    ndim = len(grid)
    split: list[int] = [b]
    for g in padded:
        split += [g // window, window]
    x = x.view(*split, c)
    counts = [1 + 2 * i for i in range(ndim)]
    inside = [2 + 2 * i for i in range(ndim)]
    x = x.permute(0, *counts, *inside, 1 + 2 * ndim).contiguous()
    return x.view(-1, *([window] * ndim), c), padded


def unpartition(windows: torch.Tensor, window: int, padded: tuple[int, ...], grid: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`partition`: (B * n_windows, *window, C) -> (B, *grid, C), padding cropped."""
    ndim = len(grid)
    counts = [p // window for p in padded]
    b = windows.shape[0] // math.prod(counts)
    x = windows.view(b, *counts, *([window] * ndim), -1)
    order = [0]
    for i in range(ndim):
        order += [1 + i, 1 + ndim + i]
    x = x.permute(*order, 1 + 2 * ndim).contiguous().view(b, *padded, -1)
    if tuple(padded) != tuple(grid):
        x = x[(slice(None),) + tuple(slice(0, g) for g in grid)].contiguous()
    return x
