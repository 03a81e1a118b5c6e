"""SAMed's training step: the loss of the low-res logits against the low-res label (SAMed ``trainer.py``).

Official loss: 0.2 x cross-entropy + 0.8 x Dice on softmax probabilities of all K + 1 channels (background
included), Dice computed over the whole batch per class with squared sums in the denominator and smoothing
1e-5, averaged over classes: MONAI's ``DiceCELoss(include_background=True, to_onehot_y=True, softmax=True,
squared_pred=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5, lambda_dice=0.8, lambda_ce=0.2)``, set in
``configs/train.json``. The IoU head gets no gradient (the official loss ignores it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bundles.networks.samed import SAMed

__all__ = ["LowResLossModule"]


class LowResLossModule(nn.Module):
    """``forward({'image': (B, 3, S, S), 'low_res_label': (B, 1, S/4, S/4)})`` -> ``loss(low_res_logits, label)``.

    Args:
        network: a :class:`SAMed`.
        loss: (logits (B, K + 1, s, s), labels (B, 1, s, s)) -> scalar.
    """

    def __init__(self, network: SAMed, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.network = network
        self.loss = loss

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        device = next(self.network.parameters()).device
        logits = self.network.low_res_logits(batch["image"].to(device))
        return self.loss(logits.float(), batch["low_res_label"].to(device))
