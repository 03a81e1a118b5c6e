"""A fixed-size window cut out of a volume, zeros where the window leaves it: the crop of every training sampler
and of the window-based sessions (a window may hang over the border of a small scan)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

__all__ = ["crop_window"]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def crop_window(array: Array, start: Sequence[int], size: int | Sequence[int]) -> Array:
    """``(..., X, Y, Z) -> (..., *size)``: voxels ``start[a] .. start[a] + size[a]`` of the last three axes
    (``start`` may be negative or run past the end), zeros outside the array.

    Args:
        array: a NumPy array or torch tensor (its type, dtype and device are kept).
        start: the window's first voxel index per spatial axis.
        size: the window's size per axis, or one size for a cube.
    """
    sizes = [int(size)] * 3 if isinstance(size, (int, np.integer)) else [int(s) for s in size]
    lead = tuple(array.shape[:-3])
    out = array.new_zeros((*lead, *sizes)) if isinstance(array, torch.Tensor) else np.zeros((*lead, *sizes), dtype=array.dtype)
    src, dst = [], []
    for s, n, extent in zip((int(v) for v in start), sizes, array.shape[-3:]):
        lo, hi = max(s, 0), min(s + n, extent)
        if hi <= lo:  # the window misses the array along this axis
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[(..., *dst)] = array[(..., *src)]
    return out
