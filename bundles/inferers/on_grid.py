"""The last step of every family's inference: probabilities on the model's grid -> masks on the input grid.

Each class's probabilities are resampled (trilinear, through world coordinates:
:func:`bundles.io.resample.resample_to_grid`) from the preprocessed grid onto the input image's own grid,
only where they can exceed the threshold, then thresholded, then optionally reduced to their largest
connected component. Resampling probabilities
before thresholding (not masks after) keeps thin structures and gives smooth borders on a finer input grid.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms.utils import get_largest_connected_component_mask

from bundles.errors import require_package
from bundles.io.grid import ImageGrid, sub_grid_affine
from bundles.io.resample import resample_to_grid

__all__ = ["MasksOnGrid", "above_box", "footprint"]

RESAMPLE_VOXELS = 2**24
"""Destination voxels resampled per call (float64 inside MONAI's resampler: 128 MiB); a larger box is
resampled in slabs along its last axis."""


def above_box(probabilities: torch.Tensor, threshold: float) -> tuple[slice, ...] | None:
    """The source voxels whose trilinear neighbourhood holds a value above ``threshold``: the bounding box of
    those voxels, grown by one voxel (clipped to the volume), for a ``(x, y, z)`` volume; None when none is."""
    above = probabilities > threshold
    if not bool(above.any()):
        return None
    box = []
    for axis in range(3):
        hits = torch.nonzero(above.any(dim=tuple(a for a in range(3) if a != axis))).flatten()
        box.append(slice(max(int(hits[0]) - 1, 0), min(int(hits[-1]) + 2, above.shape[axis])))
    return tuple(box)


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

        Only what can come out above the threshold is resampled: a trilinear value is a weighted mean of
        its 8 source neighbours, so it exceeds the threshold only next to a source voxel that does. Each class
        resamples the source box around its voxels above the threshold (:func:`above_box`) onto the part of
        ``grid`` that box reaches (:func:`footprint`); a class with none is empty without any resampling.
        """
        masks = np.zeros((probabilities.shape[0], *grid.shape), dtype=bool)
        src_affine = np.asarray(affine, dtype=np.float64)
        for k in range(probabilities.shape[0]):
            box = above_box(probabilities[k], self.threshold)
            if box is None:
                continue
            part = probabilities[k : k + 1][(slice(None), *box)]
            part_affine = sub_grid_affine(src_affine, [s.start for s in box])
            reach = footprint(part_affine, tuple(part.shape[1:]), grid)
            if reach is None:
                continue
            self._resample_into(masks[k], part, part_affine, grid, reach)
        if self.keep_largest_component:
            for k in range(masks.shape[0]):
                if masks[k].any():
                    masks[k] = np.asarray(get_largest_connected_component_mask(torch.from_numpy(masks[k])))
        return masks

    def _resample_into(self, mask: np.ndarray, part: torch.Tensor, part_affine: np.ndarray, grid: ImageGrid,
                       reach: tuple[slice, ...]) -> None:
        """Threshold ``part`` (1, x, y, z) resampled onto the ``reach`` box of ``grid`` into ``mask``, in slabs of
        at most :data:`RESAMPLE_VOXELS` along the last axis."""
        plane = (reach[0].stop - reach[0].start) * (reach[1].stop - reach[1].start)
        depth = max(1, RESAMPLE_VOXELS // plane)
        for z in range(reach[2].start, reach[2].stop, depth):
            slab = (reach[0], reach[1], slice(z, min(z + depth, reach[2].stop)))
            slab_affine = sub_grid_affine(grid.affine, [s.start for s in slab])
            on_grid = resample_to_grid(part, part_affine, (slab_affine, tuple(s.stop - s.start for s in slab)), mode="bilinear")
            mask[slab] = np.asarray(on_grid[0] > self.threshold)


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
