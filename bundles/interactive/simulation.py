"""Click simulation from a reference mask: where a user would click next, given the current prediction.

- ``random``: a voxel drawn uniformly from the error region (false negatives ∪ false positives);
  positive when it is a false negative. With an empty prediction this is a uniform voxel of the object.
- ``ritm``: the error type (FN or FP) whose Euclidean distance transform (border padded with background)
  reaches further wins; the click is drawn uniformly among its voxels deeper than half that maximum
  (after RITM, Sofiiuk et al., "Reviving Iterative Training with Mask Guidance for Interactive
  Segmentation", whose evaluation clicks the deepest voxel of the larger error).

Arrays are bool, of any number of axes (one mask of the model's window); clicks are voxel indices of that
array, in axis order.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt

__all__ = ["random_click", "ritm_click"]


def _errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return gt & ~pred, pred & ~gt


def random_click(pred: np.ndarray, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A click uniform over FN ∪ FP of bool arrays of one shape -> (voxel (ndim,), label 1/0).

    With no error left, a uniform voxel of the object (label 1), as an interaction loop would place none;
    an empty object gets the array's centre as a negative click.
    """
    fn, fp = _errors(pred, gt)
    region = fn | fp
    if not region.any():
        region = gt if gt.any() else None
    if region is None:
        return np.array(gt.shape) // 2, 0
    idx = np.argwhere(region)
    voxel = idx[int(rng.integers(len(idx)))]
    return voxel, int(gt[tuple(voxel)])


def ritm_click(pred: np.ndarray, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A click deep inside the larger error region (see the module doc) -> (voxel (ndim,), label 1/0)."""
    fn, fp = _errors(pred, gt)
    if not (fn.any() or fp.any()):
        return random_click(pred, gt, rng)
    unpad = tuple(slice(1, -1) for _ in gt.shape)
    depth = {}
    for name, region in (("fn", fn), ("fp", fp)):
        depth[name] = distance_transform_edt(np.pad(region, 1))[unpad]
    name = "fn" if depth["fn"].max() >= depth["fp"].max() else "fp"
    dist = depth[name]
    idx = np.argwhere(dist > dist.max() / 2.0)
    voxel = idx[int(rng.integers(len(idx)))]
    return voxel, int(name == "fn")
