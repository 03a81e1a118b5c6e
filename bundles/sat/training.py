"""The training step of text-prompted segmentation: text queries + image crops -> deep-supervised loss."""

from __future__ import annotations

from typing import Any

import torch

from bundles.sat.losses.dice_bce import DeepSupervisedDiceBCE

__all__ = ["TextPromptedTrainingModule", "set_trainable"]


def set_trainable(module: torch.nn.Module, prefixes: list[str] | tuple[str, ...]) -> torch.nn.Module:
    """Freeze every parameter of ``module`` except those whose name starts with one of ``prefixes``.

    SAT trains its segmentation network with the text encoder frozen except ``modality_embed``
    (official SAT model/maskformer.py); an encoder trained from scratch opens its ``projection_layer`` too.
    """
    for name, param in module.named_parameters():
        param.requires_grad_(any(name.startswith(p) for p in prefixes))
    return module


class TextPromptedTrainingModule(torch.nn.Module):
    """Wraps the segmentation network and the text encoder; ``forward(batch)`` returns the loss.

    Each distinct (modality, term) of the batch is encoded once; queries are gathered to ``(B, Q, D)``.

    Args:
        network: SAT-contract network (deep-supervision list in training mode, or one logit map).
        text_encoder: ``text_encoder(terms, modality) -> (N, D)``.
        loss: loss over (outputs, target, query_mask); default SAT's deep-supervised Dice + BCE.
    """

    def __init__(self, network: torch.nn.Module, text_encoder: torch.nn.Module, loss: torch.nn.Module | None = None):
        super().__init__()
        self.network = network
        self.text_encoder = text_encoder
        self.loss = loss if loss is not None else DeepSupervisedDiceBCE()

    def queries(self, terms: list[list[str]], modalities: list[str]) -> torch.Tensor:
        """``(B, Q, D)`` query embeddings for per-sample term lists of equal length ``Q``."""
        rows: dict[tuple[str, str], torch.Tensor] = {}
        for modality in sorted(set(modalities)):
            unique = sorted({t for ts, m in zip(terms, modalities) if m == modality for t in ts})
            embedded = self.text_encoder(unique, modality)
            rows.update({(modality, t): embedded[i] for i, t in enumerate(unique)})
        return torch.stack([torch.stack([rows[(m, t)] for t in ts]) for ts, m in zip(terms, modalities)])

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        device = next(self.network.parameters()).device
        queries = self.queries(batch["terms"], batch["modality"]).to(device)
        outputs = self.network(batch["image"].to(device), queries)
        return self.loss(outputs, batch["target"].to(device), batch["query_mask"].to(device))
