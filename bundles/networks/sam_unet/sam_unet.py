"""SAM-UNet: a frozen SAM ViT image encoder with a parallel CNN branch, U-Net-like multi-scale fusion and an
HQ-SAM-like decoder with one learned medical token; one mask per box or point prompt.

Built from the paper (Yang et al., "SAM-UNet", arXiv 2408.09886v1) and the layout of Hhankyangg/sam-unet
(no licence, no released weights: this is our implementation, trained by us). Data flow for an image
(B, 3, S, S), S = 256, SAM-normalised RGB:

1. CNN branch (:class:`~.cnn_branch.ResNetBranch`): features f1..f4 at S/4 .. S/32;
2. the SAM ViT (frozen; its 1024 checkpoint resized to S like SAMed's) runs in stages that end at its
   global-attention blocks (ViT-B: blocks 0-2, 3-5, 6-8, 9-11); before stage i's global block the tokens get
   ``adapters_in[i](f_i)`` (:class:`~.adapters.Reshaper`, to the G x G token grid); after stages 0..2 the
   tokens pass through ``adapters_bridge[2 - i]`` to (dim/8, 4G, 4G); the neck gives the image embedding
   (dim, G, G), which ``embedding_encoder`` also brings to (dim/8, 4G, 4G); the four maps are summed: the
   multi-scale feature;
3. SAM's prompt encoder embeds the box (2 corner tokens) or points (plus SAM's padding point when no box);
4. :class:`~.med_decoder.MedMaskDecoder` -> logits (B, 1, 4G, 4G), upsampled bilinearly to (B, 1, S, S).

Interface: ``forward(image, boxes=None, points=None, point_labels=None)`` -> (B, 1, S, S) logits;
``encode(image)`` -> (embedding, multi-scale feature), cached by a session for several prompts on one image;
``decode(embedding, multi_scale, boxes, points, point_labels)`` -> (B, 1, S, S). Coordinates are SAM's:
(x, y) in input pixels with x along the last tensor axis; boxes (B, 4) = (x_min, y_min, x_max, y_max).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bundles.errors import ConfigurationError
from bundles.networks.sam.prompt_encoder import PromptEncoder
from bundles.networks.sam.two_way_transformer import TwoWayTransformer
from bundles.networks.sam.variants import SAM_ENCODERS, SAM_SHARED
from bundles.networks.sam.vit_encoder import ViTEncoder
from bundles.networks.sam_unet.adapters import Reshaper, upscaler
from bundles.networks.sam_unet.cnn_branch import ResNetBranch
from bundles.networks.sam_unet.med_decoder import MedMaskDecoder
from bundles.networks.variants import variant_settings

__all__ = ["SAMUNet", "VARIANTS"]

#: Named variants (the original registry: ``res34_sam_unet``, ``res50_sam_unet``): SAM ViT-B at 256 input.
VARIANTS: dict[str, dict[str, Any]] = {
    "res34": {**SAM_SHARED, **SAM_ENCODERS["vit_b"], "img_size": 256, "cnn": "resnet34"},
    "res50": {**SAM_SHARED, **SAM_ENCODERS["vit_b"], "img_size": 256, "cnn": "resnet50"},
}

#: Side of the decoder's logits relative to the token grid (two 2x transposed convs).
LOW_RES_FACTOR = 4


class SAMUNet(nn.Module):
    """SAM-UNet; sizes as in :data:`VARIANTS` (tests build tiny ones).

    Raises:
        ConfigurationError: ``img_size`` not a multiple of ``patch_size``; stages that the global blocks do not
            split into exactly four.
    """

    def __init__(
        self,
        img_size: int,
        cnn: str,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        global_attn_indexes: tuple[int, ...],
        window_size: int,
        prompt_dim: int,
        decoder_depth: int,
        decoder_heads: int,
        decoder_mlp_dim: int,
    ) -> None:
        super().__init__()
        if img_size % patch_size or len(global_attn_indexes) != 4 or max(global_attn_indexes) != depth - 1:
            raise ConfigurationError(
                f"SAM-UNet: img_size {img_size} must be a multiple of patch_size {patch_size}, and the 4 global blocks "
                f"{tuple(global_attn_indexes)} must end each of 4 stages (the last = block {depth - 1})"
            )
        self.img_size = img_size
        grid = img_size // patch_size
        self.image_encoder = ViTEncoder(
            ndim=2, img_size=img_size, patch_size=patch_size, in_chans=3, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
            out_chans=prompt_dim, window_size=window_size, global_attn_indexes=global_attn_indexes,
        )
        for p in self.image_encoder.parameters():
            p.requires_grad_(False)
        self.global_blocks = tuple(global_attn_indexes)
        self.resnet = ResNetBranch(cnn)
        sizes = [img_size // 2 ** (i + 2) for i in range(4)]
        self.adapters_in = nn.ModuleList(Reshaper(c, s, grid, embed_dim) for c, s in zip(self.resnet.channels, sizes))
        self.adapters_bridge = nn.ModuleList(upscaler(embed_dim, prompt_dim, prompt_dim // 8) for _ in range(3))
        self.embedding_encoder = upscaler(prompt_dim, prompt_dim // 4, prompt_dim // 8)
        self.prompt_encoder = PromptEncoder(2, prompt_dim, grid, img_size, num_point_embeddings=4)
        self.mask_decoder = MedMaskDecoder(
            prompt_dim, TwoWayTransformer(decoder_depth, prompt_dim, decoder_heads, decoder_mlp_dim, downsample=2)
        )

    @classmethod
    def build(cls, variant: str = "res34", **overrides: Any) -> SAMUNet:
        """The named variant (:data:`VARIANTS`) with ``overrides`` replacing its sizes.

        Raises:
            ConfigurationError: unknown variant.
        """
        return cls(**variant_settings(VARIANTS, variant, overrides, "SAM-UNet"))

    @classmethod
    def res34(cls, **overrides: Any) -> SAMUNet:
        """SAM-UNet with a ResNet-34 branch (the original training default)."""
        return cls.build("res34", **overrides)

    @classmethod
    def res50(cls, **overrides: Any) -> SAMUNet:
        """SAM-UNet with a ResNet-50 branch."""
        return cls.build("res50", **overrides)

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) -> image embedding (B, dim, G, G) and multi-scale feature (B, dim/8, 4G, 4G)."""
        expected = (3, self.img_size, self.img_size)
        if image.ndim != 4 or tuple(image.shape[1:]) != expected:
            raise ConfigurationError(f"SAM-UNet takes images (B, {', '.join(map(str, expected))}); got {tuple(image.shape)}")
        features = self.resnet(image)
        encoder = self.image_encoder
        x = encoder.patch_embed(image) + encoder.pos_embed
        bridges = []
        start = 0
        for stage, end in enumerate(self.global_blocks):
            for block in encoder.blocks[start:end]:
                x = block(x)
            x = x + self.adapters_in[stage](features[stage]).movedim(1, -1)
            x = encoder.blocks[end](x)
            if stage < 3:
                bridges.append(self.adapters_bridge[2 - stage](x.movedim(-1, 1)))
            start = end + 1
        embedding = encoder.neck(x.movedim(-1, 1))
        multi_scale = self.embedding_encoder(embedding) + sum(bridges)
        return embedding, multi_scale

    def _sparse(self, boxes: torch.Tensor | None, points: torch.Tensor | None, point_labels: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        if boxes is None and (points is None or points.shape[1] == 0):
            raise ConfigurationError("SAM-UNet needs a prompt for every mask: a box (B, 4) or points (B, N, 2) with labels (B, N)")
        parts = []
        if points is not None and points.shape[1] > 0:
            if point_labels is None or tuple(point_labels.shape) != tuple(points.shape[:2]):
                raise ConfigurationError(f"SAM-UNet: point_labels must be (B, N) for points {tuple(points.shape)}")
            parts.append(self.prompt_encoder.embed_points(points.to(dtype), point_labels, pad=boxes is None))
        if boxes is not None:
            parts.append(self.prompt_encoder.embed_boxes(boxes.to(dtype)))
        return torch.cat(parts, dim=1)

    def decode(
        self,
        embedding: torch.Tensor,
        multi_scale: torch.Tensor,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One mask per prompt row -> logits (B, 1, S, S) (see the module doc for the coordinates)."""
        sparse = self._sparse(boxes, points, point_labels, embedding.dtype)
        b = sparse.shape[0]
        dense = self.prompt_encoder.embed_mask(None, b).to(embedding.dtype)
        low = self.mask_decoder(embedding, self.prompt_encoder.dense_pe().to(embedding.dtype), sparse, dense, multi_scale)
        return F.interpolate(low, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)

    def forward(
        self,
        image: torch.Tensor,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        embedding, multi_scale = self.encode(image)
        return self.decode(embedding, multi_scale, boxes, points, point_labels)
