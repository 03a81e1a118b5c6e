"""SAM-UNet's mask decoder: SAM's two-way transformer and upscaling with one learned medical token (HQ-SAM-like).

Of SAM's mask decoder only ``transformer`` and ``output_upscaling`` are kept (no IoU token, mask tokens,
hypernetworks or IoU head). Tokens = [``med_token``, prompt tokens]; after the transformer, SAM's upscaled
image tokens (dim/8, 4G, 4G) pass through ``embedding_maskfeature`` (conv 3x3 -> dim/4, layer norm, GELU,
conv 3x3 -> dim/8), the multi-scale feature of the encoder side is added, and the mask is the dot product
with ``hf_mlp`` (dim -> dim -> dim -> dim/8) of the med token's output: one mask per prompt.
"""

from __future__ import annotations

import torch
from torch import nn

from bundles.networks.sam.layer_norm import ChannelLayerNorm
from bundles.networks.sam.mlp import MLP
from bundles.networks.sam.two_way_transformer import TwoWayTransformer

__all__ = ["MedMaskDecoder"]


class MedMaskDecoder(nn.Module):
    """Args: dim (prompt / embedding channels, 256); transformer: SAM's two-way transformer."""

    def __init__(self, dim: int, transformer: TwoWayTransformer) -> None:
        super().__init__()
        self.transformer = transformer
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, stride=2),
            ChannelLayerNorm(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, stride=2),
            nn.GELU(),
        )
        self.med_token = nn.Embedding(1, dim)
        self.hf_mlp = MLP(dim, dim, dim // 8, 3)
        self.embedding_maskfeature = nn.Sequential(
            nn.Conv2d(dim // 8, dim // 4, 3, padding=1),
            ChannelLayerNorm(dim // 4),
            nn.GELU(),
            nn.Conv2d(dim // 4, dim // 8, 3, padding=1),
        )

    def forward(
        self, embedding: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor, multi_scale: torch.Tensor
    ) -> torch.Tensor:
        """embedding, dense (B, dim, G, G); image_pe (1, dim, G, G); sparse (B, T, dim); multi_scale
        (B, dim/8, 4G, 4G) -> mask logits (B, 1, 4G, 4G)."""
        b = sparse.shape[0]
        tokens = torch.cat([self.med_token.weight.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        src = embedding + dense
        grid = src.shape[2:]
        hs, src = self.transformer(src, image_pe.expand(b, *image_pe.shape[1:]), tokens)
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, -1, *grid))
        features = self.embedding_maskfeature(upscaled) + multi_scale
        weights = self.hf_mlp(hs[:, 0])
        return (weights.unsqueeze(1) @ features.flatten(2)).view(b, 1, *features.shape[2:])
