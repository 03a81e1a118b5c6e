"""The last step of every family's inference: probabilities on the model's grid -> masks on the input grid.

Each class's probabilities are resampled (trilinear, through world coordinates:
:func:`bundles.io.resample.resample_to_grid`) from the preprocessed grid onto the input image's own grid,
then thresholded, then optionally reduced to their largest connected component. Resampling probabilities
before thresholding (not masks after) keeps thin structures and gives smooth borders on a finer input grid.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms.utils import get_largest_connected_component_mask

from bundles.errors import require_package
from bundles.io.grid import ImageGrid, sub_grid_affine
from bundles.io.resample import resample_to_grid

__all__ = ["MasksOnGrid", "footprint"]

RESAMPLE_VOXELS = 2**27
"""Destination voxels resampled per call, over all channels of the call (float64 inside MONAI's resampler:
1 GiB); a call computes the sampling grid once for all its channels."""


class MasksOnGrid:
    """Probabilities ``(K, x, y, z)`` on a grid with affine ``affine`` -> bool masks ``(K, *grid.shape)``.

    Args:
        threshold: probability above which a voxel belongs to the mask (SAT, SAMed: 0.5).
        keep_largest_component: keep only the largest connected component of each mask (MONAI's
            ``get_largest_connected_component_mask``, which needs scikit-image: checked here, up front).

    Raises:
        MissingPackageError: ``keep_largest_component`` without scikit-image installed.
    """

    def __init__(self, threshold: float = 0.5, keep_largest_component: bool = False):
        self.threshold = threshold
        self.keep_largest_component = keep_largest_component
        if keep_largest_component:
            require_package("skimage", "scikit-image", "keep_largest_component (MONAI's connected components)")

    def __call__(self, probabilities: torch.Tensor, affine: torch.Tensor | np.ndarray, grid: ImageGrid) -> np.ndarray:
        """``probabilities`` (float, any device) with voxel->RAS ``affine`` (4x4) -> masks on ``grid``.

        Only the part of ``grid`` the probabilities can reach is resampled (:func:`footprint`); the rest
        is outside the source, where resampling gives 0 anyway.
        """
        masks = np.zeros((probabilities.shape[0], *grid.shape), dtype=bool)
        box = footprint(np.asarray(affine, dtype=np.float64), tuple(probabilities.shape[1:]), grid)
        if box is None:
            return masks
        sub_affine = sub_grid_affine(grid.affine, [s.start for s in box])
        sub_shape = tuple(s.stop - s.start for s in box)
        step = max(1, RESAMPLE_VOXELS // int(np.prod(sub_shape)))
        for k in range(0, probabilities.shape[0], step):
            on_grid = resample_to_grid(probabilities[k : k + step], affine, (sub_affine, sub_shape), mode="bilinear")
            masks[(slice(k, k + step), *box)] = np.asarray(on_grid > self.threshold)
        if self.keep_largest_component:
            for k in range(masks.shape[0]):
                if masks[k].any():
                    masks[k] = np.asarray(get_largest_connected_component_mask(torch.from_numpy(masks[k])))
        return masks


def footprint(src_affine: np.ndarray, src_shape: tuple[int, ...], grid: ImageGrid) -> tuple[slice, ...] | None:
    """The box of ``grid`` voxels within one source voxel of a source volume (``src_shape`` on ``src_affine``),
    i.e. every voxel where trilinear resampling with zero padding can be non-zero; None when they miss."""
    corners = np.array(np.meshgrid(*[[-1.0, n] for n in src_shape], indexing="ij")).reshape(3, -1)
    to_grid = np.linalg.inv(grid.affine) @ src_affine
    inside = to_grid[:3, :3] @ corners + to_grid[:3, 3:4]
    lo = np.maximum(np.floor(inside.min(1)).astype(int), 0)
    hi = np.minimum(np.ceil(inside.max(1)).astype(int) + 1, grid.shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
