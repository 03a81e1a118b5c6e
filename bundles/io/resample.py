"""``resample_to_grid``: put any channel-first volume onto a target voxel grid through world coordinates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import SpatialResample

from bundles.io.grid import ImageGrid

__all__ = ["resample_to_grid"]


def _affine_tensor(affine: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A float64 CPU copy (grid affines are read-only arrays, which ``torch.as_tensor`` cannot share)."""
    if isinstance(affine, torch.Tensor):
        return affine.detach().to(device="cpu", dtype=torch.float64).clone()
    return torch.tensor(np.asarray(affine, dtype=np.float64))


def resample_to_grid(
    data: torch.Tensor | np.ndarray,
    src_affine: torch.Tensor | np.ndarray,
    dst_grid: ImageGrid | tuple[np.ndarray | torch.Tensor, Sequence[int]],
    mode: Literal["nearest", "bilinear"] = "nearest",
) -> torch.Tensor:
    """Resample ``data`` ``(C, x, y, z)`` on ``src_affine`` onto ``dst_grid``.

    Each destination voxel centre is mapped to world (RAS mm) with the destination affine and back to
    source voxel coordinates with the inverse source affine (MONAI ``SpatialResample``); values outside the
    source are 0. When shape and affine coincide exactly the data is returned as a copy, untouched.

    Args:
        data: channel-first array or tensor ``(C, x, y, z)``; a tensor keeps its device.
        src_affine: 4x4 voxel-index -> RAS mm affine of ``data``.
        dst_grid: target :class:`ImageGrid`, or ``(dst_affine 4x4, dst_shape (X, Y, Z))``.
        mode: ``"nearest"`` for masks and labels (values copied, never mixed), ``"bilinear"`` (trilinear)
            for intensities.

    Returns:
        float32 tensor ``(C, X, Y, Z)`` on ``data``'s device.

    Raises:
        ValueError: ``data`` is not 4D, an affine is not 4x4, or ``mode`` is unknown.
    """
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    if isinstance(dst_grid, ImageGrid):
        dst_affine, dst_shape = dst_grid.affine, dst_grid.shape
    else:
        dst_affine, dst_shape = dst_grid
    tensor = torch.as_tensor(data)
    if isinstance(tensor, MetaTensor):
        tensor = tensor.as_tensor()
    tensor = tensor.to(torch.float32)
    src, dst = _affine_tensor(src_affine), _affine_tensor(dst_affine)
    dst_shape = tuple(int(s) for s in dst_shape)
    if tensor.ndim != 4 or src.shape != (4, 4) or dst.shape != (4, 4) or len(dst_shape) != 3:
        raise ValueError(
            f"expected data (C, x, y, z), 4x4 affines and a 3D shape; got data {tuple(tensor.shape)},"
            f" affines {tuple(src.shape)} / {tuple(dst.shape)}, shape {dst_shape}"
        )
    if tuple(tensor.shape[1:]) == dst_shape and torch.equal(src, dst):
        return tensor.clone()
    resampler = SpatialResample(mode=mode, padding_mode="zeros", dtype=torch.float64)
    out = resampler(MetaTensor(tensor, affine=src), dst_affine=dst, spatial_size=dst_shape)
    return out.as_tensor().to(torch.float32)
