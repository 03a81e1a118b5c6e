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
from bundles.io.grid import ImageGrid
from bundles.io.resample import resample_to_grid

__all__ = ["MasksOnGrid"]


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
        """``probabilities`` (float, any device) with voxel->RAS ``affine`` (4x4) -> masks on ``grid``."""
        masks = np.zeros((probabilities.shape[0], *grid.shape), dtype=bool)
        for k in range(probabilities.shape[0]):
            on_grid = resample_to_grid(probabilities[k : k + 1], affine, grid, mode="bilinear")
            mask = on_grid[0] > self.threshold
            if self.keep_largest_component and bool(mask.any()):
                mask = get_largest_connected_component_mask(mask)
            masks[k] = np.asarray(mask)
        return masks
