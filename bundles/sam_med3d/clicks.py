"""Click simulation from a reference mask, as SAM-Med3D was trained and evaluated (official
``utils/click_method.py``, ``train.py``, ``validation.py``).

- ``random``: a voxel drawn uniformly from the error region (false negatives ∪ false positives);
  positive when it is a false negative. With an empty prediction this is a uniform voxel of the object.
  Training uses it for every click, the official evaluation from the third click on.
- ``ritm``: the error type (FN or FP) whose Euclidean distance transform (border padded with background)
  reaches further wins; the click is drawn uniformly among its voxels deeper than half that maximum.
  The official evaluation uses it for clicks 1 and 2.

"Prediction" here is the upsampled low-res logits > :data:`PRED_LOGIT_THRESHOLD`: the official code
thresholds the logits (not the probabilities) at 0.5 when it places clicks; kept, since the weights were
trained with clicks placed that way. Coordinates are voxel indices of the window, in axis order.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

__all__ = ["PRED_LOGIT_THRESHOLD", "random_click", "ritm_click", "clicks_for_batch"]

#: Official threshold on the upsampled logits when placing clicks (``prev_masks > 0.5``).
PRED_LOGIT_THRESHOLD = 0.5


def _errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return gt & ~pred, pred & ~gt


def random_click(pred: np.ndarray, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A click uniform over FN ∪ FP of bool (X, Y, Z) arrays -> (voxel (3,), label 1/0).

    With no error left, a uniform voxel of the object (label 1) as the official loop would place none;
    an empty object gets the window centre as a negative click.
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
    """A click deep inside the larger error region (see the module doc) -> (voxel (3,), label 1/0)."""
    fn, fp = _errors(pred, gt)
    if not (fn.any() or fp.any()):
        return random_click(pred, gt, rng)
    depth = {}
    for name, region in (("fn", fn), ("fp", fp)):
        depth[name] = distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1, 1:-1]
    name = "fn" if depth["fn"].max() >= depth["fp"].max() else "fp"
    dist = depth[name]
    idx = np.argwhere(dist > dist.max() / 2.0)
    voxel = idx[int(rng.integers(len(idx)))]
    return voxel, int(name == "fn")


def clicks_for_batch(
    logits: torch.Tensor, gt: torch.Tensor, rng: np.random.Generator, method: str = "random"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One click per sample: upsampled logits and reference (B, 1, S, S, S) -> points (B, 1, 3) float,
    labels (B, 1) long, on ``logits``' device."""
    pick = random_click if method == "random" else ritm_click
    pred = (logits.detach() > PRED_LOGIT_THRESHOLD).cpu().numpy()[:, 0]
    ref = gt.detach().cpu().numpy()[:, 0] > 0
    points, labels = zip(*(pick(p, g, rng) for p, g in zip(pred, ref)))
    pts = torch.as_tensor(np.stack(points), dtype=torch.float32, device=logits.device).view(-1, 1, 3)
    return pts, torch.as_tensor(labels, dtype=torch.long, device=logits.device).view(-1, 1)
