"""SAM-Med3D's simulated clicks, as it was trained and evaluated (official ``utils/click_method.py``,
``train.py``, ``validation.py``): the core's rules (:mod:`bundles.interactive.simulation`), ``random`` for
every training click, ``ritm`` for evaluation clicks 1 and 2 and ``random`` after.

"Prediction" here is the upsampled low-res logits > :data:`PRED_LOGIT_THRESHOLD`: the official code
thresholds the logits (not the probabilities) at 0.5 when it places clicks; kept, since the weights were
trained with clicks placed that way. Coordinates are voxel indices of the window, in axis order.
"""

from __future__ import annotations

import numpy as np
import torch

from bundles.interactive.simulation import random_click, ritm_click

__all__ = ["PRED_LOGIT_THRESHOLD", "clicks_for_batch"]

#: Official threshold on the upsampled logits when placing clicks (``prev_masks > 0.5``).
PRED_LOGIT_THRESHOLD = 0.5


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
