"""Which parameters of a SAM-based network train: everything its constructor left trainable (SAMed and
SAM-UNet freeze SAM's image encoder), or, for a model trained from scratch, the encoder too."""

from __future__ import annotations

from torch import nn

__all__ = ["trainable_parameters"]


def trainable_parameters(network: nn.Module, train_encoder: bool = False) -> list[nn.Parameter]:
    """The parameters that train. ``train_encoder`` unfreezes ``network.image_encoder`` first (not what SAMed or
    SAM-UNet do: for demo models trained from scratch, where there is no pretrained SAM encoder to keep)."""
    if train_encoder:
        for p in network.image_encoder.parameters():
            p.requires_grad_(True)
    return [p for p in network.parameters() if p.requires_grad]
