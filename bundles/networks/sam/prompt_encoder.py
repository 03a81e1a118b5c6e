"""SAM's prompt encoder in 2D or 3D: points and a previous low-resolution mask -> sparse and dense embeddings.

Parameter names follow the official checkpoints: ``pe_layer.positional_encoding_gaussian_matrix``,
``point_embeddings.N.weight`` (0 = negative, 1 = positive; 2 and 3 = box corners where a model has them),
``not_a_point_embed``, ``no_mask_embed``, ``mask_downscaling.{0,1,3,4,6}``.
"""

from __future__ import annotations

import torch
from torch import nn

from bundles.errors import ConfigurationError
from bundles.networks.sam.layer_norm import ChannelLayerNorm
from bundles.networks.sam.position_encoding import RandomFourierEncoding

__all__ = ["PromptEncoder"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}


class PromptEncoder(nn.Module):
    """Args:
        ndim: spatial dimensions.
        embed_dim: channels of prompt embeddings (= the image embedding's channels).
        embedding_grid: side of the image embedding's grid (8 in SAM-Med3D, 64 in SAM at 1024²).
        input_size: side of the model input in voxels; point coordinates are divided by it.
        mask_in_chans: hidden channels of the mask downscaling (16 in every SAM).
        num_point_embeddings: 2 (SAM-Med3D) or 4 (2D SAM: negative, positive, two box corners).

    The mask downscaling maps (B, 1, *(4 * embedding_grid,) * ndim) logits to (B, embed_dim, *grid):
    conv k2 s2 1 -> c/4, LN, GELU, conv k2 s2 -> c, LN, GELU, conv 1 -> embed_dim.
    """

    def __init__(
        self,
        ndim: int,
        embed_dim: int,
        embedding_grid: int,
        input_size: int,
        mask_in_chans: int = 16,
        num_point_embeddings: int = 2,
    ) -> None:
        super().__init__()
        self.ndim = ndim
        self.embed_dim = embed_dim
        self.grid = (embedding_grid,) * ndim
        self.input_size = input_size
        # F = embed_dim // ndim features per block: 128 for SAM-Med3D's 384 channels (official
        # PromptEncoder3D: embed_dim // 3) and for 2D SAM's 256 (embed_dim // 2).
        self.pe_layer = RandomFourierEncoding(ndim, embed_dim // ndim, embed_dim)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(num_point_embeddings))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        conv = _CONV[ndim]
        self.mask_downscaling = nn.Sequential(
            conv(1, mask_in_chans // 4, kernel_size=2, stride=2),
            ChannelLayerNorm(mask_in_chans // 4),
            nn.GELU(),
            conv(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            ChannelLayerNorm(mask_in_chans),
            nn.GELU(),
            conv(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_pe(self) -> torch.Tensor:
        """The positional encoding of the image embedding's grid, (1, embed_dim, *grid)."""
        return self.pe_layer.dense(self.grid).unsqueeze(0)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool = True) -> torch.Tensor:
        """Points (B, N, ndim) in input voxel units and labels (B, N) -> (B, N (+1), embed_dim).

        Labels: 1 positive, 0 negative, -1 not a point. Coordinates get +0.5 (voxel centre) and are
        divided by ``input_size``. ``pad`` appends the padding point (0, ..., 0) with label -1, as the
        official prompt encoders do whenever no box is given.
        """
        coords = coords + 0.5
        if pad:
            coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 1, self.ndim)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        emb = self.pe_layer.encode(coords / self.input_size)
        emb = torch.where((labels == -1)[..., None], self.not_a_point_embed.weight[0], emb)
        for value, table in enumerate(self.point_embeddings[:2]):
            emb = emb + (labels == value)[..., None].to(emb.dtype) * table.weight[0]
        return emb

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes (B, 2 * ndim) as (min corner, max corner) in input pixel units, coordinates in the order
        points use -> (B, 2, embed_dim): the two corners' encodings plus ``point_embeddings`` 2 and 3
        (official ``_embed_boxes``; the corners get +0.5 like points).

        Raises:
            ConfigurationError: the encoder has no box-corner embeddings (``num_point_embeddings`` < 4).
        """
        if len(self.point_embeddings) < 4:
            raise ConfigurationError("this prompt encoder has no box-corner embeddings (num_point_embeddings < 4)")
        corners = (boxes.reshape(-1, 2, self.ndim) + 0.5) / self.input_size
        emb = self.pe_layer.encode(corners)
        return emb + torch.stack([self.point_embeddings[2].weight[0], self.point_embeddings[3].weight[0]])

    def embed_mask(self, mask: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Low-res logits (B, 1, *(4 * grid)) -> (B, embed_dim, *grid); ``None`` -> ``no_mask_embed`` broadcast."""
        if mask is None:
            return self.no_mask_embed.weight.reshape(1, -1, *([1] * self.ndim)).expand(batch, -1, *self.grid)
        return self.mask_downscaling(mask)
