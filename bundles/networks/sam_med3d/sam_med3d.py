"""SAM-Med3D: 3D ViT image encoder + point/mask prompt encoder + two-way mask decoder on a 128³ crop.

Our implementation of the official ``vit_b_ori`` model (uni-medical/SAM-Med3D ``build_sam3D.py``;
the released SAM-Med3D and SAM-Med3D-turbo weights), with the quirks the weights depend on:
zero-padded 14³ attention windows on the 8³ token grid, the relative-position indexing of
``rel_pos_3d.py``, [sin, cos, sin] Fourier features with the dense grid's first two axes swapped, and
the padding point appended to every click list.

Interface (the bundle's contract):
- ``encode(image (B, 1, S, S, S))`` -> image embedding (B, 384, S/16, S/16, S/16); S = ``img_size`` (128).
- ``decode(embedding, points (B, N, 3), point_labels (B, N), prev_low_res (B, 1, S/4, S/4, S/4) | None)``
  -> low-res logits (B, 1, S/4, S/4, S/4) (mask token 0, the single-mask output training used).
  ``points`` are voxel indices along the crop tensor's axes in order (no flip); labels 1 = foreground,
  0 = background. ``prev_low_res=None`` means zeros (what the official loops pass at the first click);
  ``N = 0`` (or ``points=None``) decodes from the previous mask alone, as training does on its
  no-click steps.
- ``forward(image, points, point_labels, prev_low_res=None)`` = ``decode(encode(image), ...)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bundles.errors import ConfigurationError
from bundles.networks.sam.mask_decoder import MaskDecoder
from bundles.networks.sam.prompt_encoder import PromptEncoder
from bundles.networks.sam.two_way_transformer import TwoWayTransformer
from bundles.networks.sam.vit_encoder import ViTEncoder
from bundles.networks.sam_med3d.rel_pos_3d import add_sam_med3d_rel_pos
from bundles.networks.variants import variant_settings

__all__ = ["SAMMed3D", "VIT_B_ORI", "VARIANTS"]

#: Official sizes of ``vit_b_ori`` (build_sam3D.py ``_build_sam3D_ori``): 100,509,232 parameters.
VIT_B_ORI: dict[str, Any] = dict(
    img_size=128,
    patch_size=16,
    embed_dim=768,
    depth=12,
    num_heads=12,
    global_attn_indexes=(2, 5, 8, 11),
    window_size=14,
    prompt_dim=384,
    decoder_depth=2,
    decoder_heads=8,
    decoder_mlp_dim=2048,
)

#: Named variants (segment-anything's registry pattern); configs name ``SAMMed3D.vit_b_ori``.
VARIANTS = {"vit_b_ori": VIT_B_ORI}

#: The mask decoder's output grid is 4x the embedding grid (two k2 s2 transposed convs).
LOW_RES_FACTOR = 4


class SAMMed3D(nn.Module):
    """SAM-Med3D network; sizes as in :data:`VIT_B_ORI` (tests build tiny ones)."""

    def __init__(
        self,
        img_size: int,
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
        if img_size % (patch_size * LOW_RES_FACTOR):
            raise ConfigurationError(f"SAM-Med3D: img_size {img_size} must be a multiple of 4 x patch_size ({patch_size})")
        self.img_size = img_size
        grid = img_size // patch_size
        self.image_encoder = ViTEncoder(
            ndim=3,
            img_size=img_size,
            patch_size=patch_size,
            in_chans=1,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            out_chans=prompt_dim,
            window_size=window_size,
            global_attn_indexes=global_attn_indexes,
            add_rel_pos=add_sam_med3d_rel_pos,
        )
        self.prompt_encoder = PromptEncoder(3, prompt_dim, grid, img_size, mask_in_chans=16, num_point_embeddings=2)
        self.mask_decoder = MaskDecoder(
            3, prompt_dim, TwoWayTransformer(decoder_depth, prompt_dim, decoder_heads, decoder_mlp_dim, downsample=2)
        )

    @classmethod
    def vit_b_ori(cls, **overrides: Any) -> SAMMed3D:
        """The released architecture (SAM-Med3D, -turbo, -organ, -brain), ``overrides`` replacing sizes."""
        return cls.build("vit_b_ori", **overrides)

    @classmethod
    def build(cls, variant: str, **overrides: Any) -> SAMMed3D:
        """The named variant (:data:`VARIANTS`) with ``overrides`` replacing its sizes.

        Raises:
            ConfigurationError: unknown variant.
        """
        return cls(**variant_settings(VARIANTS, variant, overrides, "SAM-Med3D"))

    @property
    def low_res_size(self) -> int:
        """Side of the low-resolution logits (32 for 128³ input)."""
        return self.img_size // self.image_encoder.patch_embed.proj.stride[0] * LOW_RES_FACTOR

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S, S) z-normalised crop -> image embedding (B, prompt_dim, S/16, S/16, S/16)."""
        return self.image_encoder(image)

    def decode(
        self,
        embedding: torch.Tensor,
        points: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        prev_low_res: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Low-res logits (B, 1, S/4, S/4, S/4) for the clicks and previous logits (see the module doc)."""
        b = embedding.shape[0]
        if prev_low_res is None:
            side = self.low_res_size
            prev_low_res = embedding.new_zeros(b, 1, side, side, side)
        if points is None or points.shape[1] == 0:
            sparse = embedding.new_zeros(b, 0, embedding.shape[1])
        else:
            sparse = self.prompt_encoder.embed_points(points.to(embedding.dtype), point_labels, pad=True)
        dense = self.prompt_encoder.embed_mask(prev_low_res.to(embedding.dtype), b)
        masks, _ = self.mask_decoder(embedding, self.prompt_encoder.dense_pe().to(embedding.dtype), sparse, dense)
        return masks

    def forward(
        self,
        image: torch.Tensor,
        points: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        prev_low_res: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.decode(self.encode(image), points, point_labels, prev_low_res)
