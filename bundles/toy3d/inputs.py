"""What the Toy3D network takes: the image in HU / 1000 and two Gaussian click maps on the same voxel grid.

A click map holds, at each voxel, the largest ``exp(-d^2 / (2 sigma^2))`` over the clicks of its kind, ``d``
the distance in voxels from the click (continuous voxel coordinates). Channel 0 holds the positive clicks
(inside the object), channel 1 the negative ones; a map without clicks is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["HU_SCALE", "network_image", "click_maps"]

#: Image units of the network: intensities divided by this (CT: 1000 HU -> 1).
HU_SCALE = 1000.0


def network_image(volume: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Intensities (any shape) -> float32 tensor in network units (divided by :data:`HU_SCALE`)."""
    return torch.as_tensor(np.asarray(volume, dtype=np.float32)) / HU_SCALE


def click_maps(shape: Sequence[int], clicks: Sequence[tuple[Sequence[float], bool]], sigma: float,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """(2, X, Y, Z) float32 click maps of ``shape`` (X, Y, Z) for ``clicks`` ((voxel (3,), positive) pairs),
    ``sigma`` in voxels (module docstring)."""
    maps = torch.zeros((2, *shape), dtype=torch.float32, device=device)
    axes = [torch.arange(n, dtype=torch.float32, device=device) for n in shape]
    for voxel, positive in clicks:
        x, y, z = (torch.exp(-((axis - float(c)) ** 2) / (2 * sigma**2)) for axis, c in zip(axes, voxel))
        channel = 0 if positive else 1
        maps[channel] = torch.maximum(maps[channel], x[:, None, None] * y[None, :, None] * z[None, None, :])
    return maps
