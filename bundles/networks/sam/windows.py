"""Non-overlapping windows over a channel-last token grid, zero-padded to a whole number of windows.

The padding tokens are zeros and take part in the attention as keys and values (no mask): SAM's
``window_partition`` does this, and SAM-Med3D's weights depend on it (its 8³ grid is padded to one 14³
window; segment-anything ``image_encoder.py``, SAM-Med3D ``image_encoder3D.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["partition", "unpartition"]


def partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """(B, *grid, C) -> (B * n_windows, *(window,) * ndim, C) and the padded grid size.

    Each spatial axis is zero-padded at its end to a multiple of ``window``; windows are ordered with
    the last axis fastest.
    """
    b, *grid, c = x.shape
    pads = [(-g) % window for g in grid]
    if any(pads):
        spec: list[int] = [0, 0]
        for p in reversed(pads):
            spec += [0, p]
        x = F.pad(x, spec)
    padded = tuple(g + p for g, p in zip(grid, pads))
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
