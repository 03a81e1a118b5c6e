"""SAM-UNet's training step: encode each image once, decode every mask's prompt, focal + 20 x Dice.

Loss (the original ``train_on_multi_gpu.py``): sigmoid focal loss (alpha 0.25, gamma 2) + 20 x Dice on the
logits at the input size: MONAI's ``DiceFocalLoss(sigmoid=True, gamma=2, alpha=0.25, lambda_focal=1,
lambda_dice=20)``, set in ``configs/train.json``. Trainable: the CNN branch, the adapters, the prompt
encoder and the decoder (the SAM encoder is frozen by the network).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bundles.networks.sam_unet import SAMUNet

__all__ = ["PromptedMaskModule"]


class PromptedMaskModule(nn.Module):
    """``forward(batch of collate_prompts)`` -> ``loss(logits (B * M, 1, S, S), masks (B * M, 1, S, S))``.

    Args:
        network: a :class:`SAMUNet`.
        loss: (logits, targets) -> scalar.
        use_points: pass the sampled point prompts (label -1 = none) as well as the boxes.
    """

    def __init__(self, network: SAMUNet, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], use_points: bool = False) -> None:
        super().__init__()
        self.network = network
        self.loss = loss
        self.use_points = use_points

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        device = next(self.network.parameters()).device
        masks = batch["masks"].to(device)
        m = masks.shape[1]
        embedding, multi_scale = self.network.encode(batch["image"].to(device))
        points = batch["points"].flatten(0, 1).to(device) if self.use_points else None
        labels = batch["point_labels"].flatten(0, 1).to(device) if self.use_points else None
        logits = self.network.decode(
            embedding.repeat_interleave(m, 0), multi_scale.repeat_interleave(m, 0), batch["boxes"].flatten(0, 1).to(device), points, labels
        )
        return self.loss(logits.float(), masks.flatten(0, 1))
