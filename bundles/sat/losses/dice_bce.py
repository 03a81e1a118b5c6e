"""SAT's segmentation loss (official SAT train.py): binary Dice + BCE per query, padded queries ignored,
summed over deep-supervision outputs with weights 1, 1/2, 1/4, 1/8 normalised to sum 1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["masked_dice_bce", "DeepSupervisedDiceBCE"]

#: Dice smoothing of the official loss.
DICE_SMOOTH = 1e-7


def masked_dice_bce(logits: torch.Tensor, target: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid queries of (1 - Dice) + BCE.

    Args:
        logits: ``(B, Q, X, Y, Z)`` logits.
        target: ``(B, Q, X, Y, Z)`` binary targets on the same grid.
        query_mask: ``(B, Q)``, 1 for real queries and 0 for padding.

    Dice is computed per (sample, query) on sigmoid probabilities with denominator sum(p^2) + sum(g^2);
    BCE-with-logits is averaged over voxels of each (sample, query).
    """
    logits = logits.float()
    target = target.float()
    prob = torch.sigmoid(logits)
    dims = tuple(range(2, logits.ndim))
    intersection = (prob * target).sum(dims)
    denominator = (prob * prob).sum(dims) + (target * target).sum(dims)
    dice_loss = 1.0 - (2.0 * intersection + DICE_SMOOTH) / (denominator + DICE_SMOOTH)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dims)
    valid = query_mask.float()
    n_valid = valid.sum().clamp_min(1.0)
    return ((dice_loss + bce) * valid).sum() / n_valid


class DeepSupervisedDiceBCE(torch.nn.Module):
    """:func:`masked_dice_bce` over a list of outputs at decreasing resolution.

    The target is down-sampled with nearest interpolation to each output's size.

    Args:
        weights: per-output weights before normalisation (official 1, 1/2, 1/4, 1/8).
    """

    def __init__(self, weights: Sequence[float] = (1.0, 0.5, 0.25, 0.125)):
        super().__init__()
        total = float(sum(weights))
        self.weights = [w / total for w in weights]

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return masked_dice_bce(outputs, target, query_mask)
        weights = self.weights[: len(outputs)]
        total = sum(weights)
        loss = outputs[0].new_zeros((), dtype=torch.float32)
        for weight, output in zip(weights, outputs):
            scaled = target if output.shape[2:] == target.shape[2:] else F.interpolate(target.float(), size=output.shape[2:], mode="nearest")
            loss = loss + (weight / total) * masked_dice_bce(output, scaled, query_mask)
        return loss
