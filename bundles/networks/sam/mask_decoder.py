"""SAM's mask decoder in 2D or 3D: two-way transformer, upscaling and hypernetwork mask heads.

Tokens = [IoU token (1), mask tokens (num_multimask_outputs + 1), prompt tokens]; image side = image
embedding + dense prompt embedding, with the dense positional encoding as key PE. The image tokens are
upscaled 4x (transposed conv k2 s2 -> dim/4, LN, GELU, transposed conv k2 s2 -> dim/8, GELU); mask i is
the dot product of hypernetwork i's output (dim/8) with every upscaled voxel. Keys follow the official
checkpoints: ``transformer``, ``iou_token``, ``mask_tokens``, ``output_upscaling.{0,1,3}``,
``output_hypernetworks_mlps.N.layers.M``, ``iou_prediction_head.layers.M``.
"""

from __future__ import annotations

import torch
from torch import nn

from bundles.networks.sam.layer_norm import ChannelLayerNorm
from bundles.networks.sam.mlp import MLP
from bundles.networks.sam.two_way_transformer import TwoWayTransformer

__all__ = ["MaskDecoder"]

_CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


class MaskDecoder(nn.Module):
    """Args: ndim; dim (transformer width); transformer; num_multimask_outputs (3); iou_head_depth (3);
    iou_head_hidden_dim (256) — the official values for both SAM and SAM-Med3D."""

    def __init__(
        self,
        ndim: int,
        dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer = transformer
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        conv_t = _CONV_T[ndim]
        self.output_upscaling = nn.Sequential(
            conv_t(dim, dim // 4, kernel_size=2, stride=2),
            ChannelLayerNorm(dim // 4),
            nn.GELU(),
            conv_t(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def predict_masks(
        self,
        image_embedding: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every mask token's mask: image_embedding, dense (B, dim, *grid); image_pe (1, dim, *grid); sparse
        (B, T, dim) -> masks (B, num_mask_tokens, *(4 * grid)) and IoU predictions (B, num_mask_tokens).

        Token 0 is SAM's single-mask output; SAMed reads all of them (token 0 = background, official
        ``MaskDecoder.predict_masks``)."""
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        src = image_embedding + dense
        grid = src.shape[2:]
        hs, src = self.transformer(src, image_pe.expand(b, *image_pe.shape[1:]), tokens)
        mask_tokens = hs[:, 1 : 1 + self.num_mask_tokens]
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, -1, *grid))
        hyper = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        masks = (hyper @ upscaled.flatten(2)).view(b, -1, *upscaled.shape[2:])
        return masks, self.iou_prediction_head(hs[:, 0])

    def forward(
        self,
        image_embedding: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`predict_masks`, keeping token 0 (``multimask_output`` False) or tokens 1.. (True)."""
        masks, iou = self.predict_masks(image_embedding, image_pe, sparse, dense)
        keep = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, keep], iou[:, keep]
