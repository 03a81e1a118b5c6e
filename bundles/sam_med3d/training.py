"""SAM-Med3D's training step: simulated clicks over the interaction steps of a batch (official ``train.py``).

For each batch the image embedding is computed once, the previous logits start at zero, and for
``num_clicks`` steps (official 11):
- a click is drawn uniformly from the error region of the current prediction (:func:`bundles.interactive.simulation.random_click`);
- at one random step in 2..8 and at the last step the decoder gets no click, only the previous logits;
  otherwise only the newest click (plus the padding point) and the previous logits, which are not
  detached, so gradients flow through the whole interaction;
- the loss (MONAI ``DiceCELoss(sigmoid=True, squared_pred=True)``) of the upsampled logits is summed
  over the steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch import nn

from bundles.engines.resumable_rng import ResumableRng
from bundles.networks.sam_med3d import SAMMed3D
from bundles.sam_med3d.clicks import clicks_for_batch

__all__ = ["ClickTrainingModule", "param_groups"]

#: Official interaction length (``train.py``: ``num_clicks=11``) and the range of the click-free step.
NUM_CLICKS = 11
NO_CLICK_STEPS = (2, 8)


def param_groups(network: SAMMed3D, learning_rate: float, decoder_factor: float = 0.1) -> list[dict[str, Any]]:
    """AdamW groups: the image encoder at ``learning_rate``, prompt encoder and mask decoder at
    ``decoder_factor`` times it (official: 8e-4 and 0.1x)."""
    encoder = [p for p in network.image_encoder.parameters() if p.requires_grad]
    rest = [p for n, p in network.named_parameters() if not n.startswith("image_encoder.") and p.requires_grad]
    return [{"params": encoder, "lr": learning_rate}, {"params": rest, "lr": learning_rate * decoder_factor}]


class ClickTrainingModule(ResumableRng, nn.Module):
    """Wraps the network; ``forward({'image', 'label'})`` returns the loss summed over the interaction.

    The click generator's state is part of ``state_dict`` (``_extra_state``), so a resumed run places the
    same clicks.

    Args:
        network: a :class:`SAMMed3D`.
        num_clicks: interaction steps per batch (official 11).
        seed, rank: the click stream.
    """

    def __init__(self, network: SAMMed3D, num_clicks: int = NUM_CLICKS, seed: int = 0, rank: int = 0) -> None:
        super().__init__()
        self.network = network
        self.num_clicks = num_clicks
        self.loss = DiceCELoss(sigmoid=True, squared_pred=True, reduction="mean")
        self.rng = np.random.default_rng([seed, rank, 3])

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        device = next(self.network.parameters()).device
        image, gt = batch["image"].to(device), batch["label"].to(device)
        embedding = self.network.encode(image)
        side = self.network.low_res_size
        low = image.new_zeros(image.shape[0], 1, side, side, side)
        upsampled = torch.zeros_like(gt)
        no_click = int(self.rng.integers(NO_CLICK_STEPS[0], NO_CLICK_STEPS[1] + 1))
        total = image.new_zeros(())
        for step in range(self.num_clicks):
            points, labels = clicks_for_batch(upsampled, gt, self.rng)
            if step in (no_click, self.num_clicks - 1):
                points = labels = None
            low = self.network.decode(embedding, points, labels, low)
            upsampled = F.interpolate(low.float(), size=gt.shape[2:], mode="trilinear", align_corners=False)
            total = total + self.loss(upsampled, gt)
        return total
