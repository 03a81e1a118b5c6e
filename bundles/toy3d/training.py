"""Toy3D's training step: simulated clicks over a few interaction steps of a batch.

For each batch the image features are computed once; at every step each sample gets one more click, drawn
uniformly from the error region of its current prediction (:func:`bundles.interactive.simulation.random_click`,
the core's click simulation), all its clicks so far become its click maps, and the decoder predicts again.
The loss (MONAI ``DiceCELoss(sigmoid=True)``) is summed over the steps.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.losses import DiceCELoss
from torch import nn

from bundles.engines.resumable_rng import ResumableRng
from bundles.interactive.simulation import random_click
from bundles.networks.toy3d import Toy3D
from bundles.toy3d.inputs import click_maps

__all__ = ["ClickLossModule"]


class ClickLossModule(ResumableRng, nn.Module):
    """Wraps the network; ``forward({'image': (B, 1, X, Y, Z), 'label': (B, 1, X, Y, Z)})`` returns the loss
    summed over ``num_clicks`` interaction steps (a scalar tensor), as :class:`bundles.engines.trainer.LossTrainer` takes it.

    The click generator's state is part of ``state_dict`` (``_extra_state``), so a resumed run places the same clicks.

    Args:
        network: a :class:`Toy3D`.
        sigma: click map width in voxels (as the session uses).
        num_clicks: interaction steps per batch.
        seed, rank: the click stream.
    """

    def __init__(self, network: Toy3D, sigma: float = 8.0, num_clicks: int = 3, seed: int = 0, rank: int = 0) -> None:
        super().__init__()
        self.network = network
        self.sigma = sigma
        self.num_clicks = num_clicks
        self.loss = DiceCELoss(sigmoid=True)
        self.rng = np.random.default_rng([seed, rank, 3])

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        device = next(self.network.parameters()).device
        image, label = batch["image"].to(device), batch["label"].to(device)
        features = self.network.encode(image)
        reference = label[:, 0].cpu().numpy() > 0
        predicted = np.zeros_like(reference)
        clicks: list[list[tuple[np.ndarray, bool]]] = [[] for _ in range(len(image))]
        total = image.new_zeros(())
        for _ in range(self.num_clicks):
            for sample, (pred, ref) in enumerate(zip(predicted, reference)):
                voxel, positive = random_click(pred, ref, self.rng)
                clicks[sample].append((voxel, bool(positive)))
            maps = torch.stack([click_maps(reference.shape[1:], c, self.sigma, device) for c in clicks])
            logits = self.network.decode(features, maps)
            total = total + self.loss(logits, label)
            predicted = logits.detach()[:, 0].cpu().numpy() > 0
        return total
