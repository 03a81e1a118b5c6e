"""SAMed: SAM with rank-4 LoRA on its image encoder, run prompt-free for 2D multi-organ segmentation.

Our implementation of hitachinsk/SAMed (``sam_lora_image_encoder.py`` + its modified ``segment_anything``)
on the shared SAM base: SAM's ViT image encoder built for ``img_size`` (512) with :class:`QVLoRA` on every
block's fused qkv, SAM's prompt encoder given no prompt (no points, no boxes, no mask: an empty sparse
embedding and ``no_mask_embed`` everywhere), and SAM's mask decoder with ``num_classes + 1`` mask tokens,
all of whose masks are returned (channel 0 = background).

Interface (the bundle's contract):
- ``forward(image (B, 3, S, S))`` -> logits (B, num_classes + 1, S, S): the decoder's low-res logits
  (B, K + 1, S/4, S/4) upsampled bilinearly (``align_corners=False``), SAMed's ``postprocess_masks`` at
  input = output size. ``image`` is a CT slice with HU clipped to [-125, 275] and scaled to [0, 1], the one
  channel repeated 3 times (SAMed's pixel mean 0 and std 1 make the model's own normalisation the identity).
- ``low_res_logits(image)`` -> (B, K + 1, S/4, S/4): what SAMed's loss is computed on.

Trainable: the LoRA factors, the prompt encoder and the whole mask decoder; the encoder's base weights are
frozen at construction (SAMed's ``LoRA_Sam``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bundles.errors import ConfigurationError
from bundles.networks.sam.lora import add_qv_lora, lora_parameters
from bundles.networks.sam.mask_decoder import MaskDecoder
from bundles.networks.sam.prompt_encoder import PromptEncoder
from bundles.networks.sam.two_way_transformer import TwoWayTransformer
from bundles.networks.sam.variants import SAM_ENCODERS, SAM_SHARED
from bundles.networks.sam.vit_encoder import ViTEncoder
from bundles.networks.variants import variant_settings

__all__ = ["SAMed", "VARIANTS", "LOW_RES_FACTOR"]

#: SAMed's settings (README / train.py): 512 input, the 8 Synapse organs, LoRA rank 4.
_SAMED = dict(img_size=512, num_classes=8, rank=4)

#: Named variants: SAMed on ViT-B (``vit_b``: SAMed, and SAMed_s after conversion) and SAMed_h on ViT-H.
VARIANTS: dict[str, dict[str, Any]] = {
    "vit_b": {**SAM_SHARED, **SAM_ENCODERS["vit_b"], **_SAMED},
    "vit_h": {**SAM_SHARED, **SAM_ENCODERS["vit_h"], **_SAMED},
}

#: The decoder's logits are 4x the token grid (two k2 s2 transposed convs): 128 for 512 input with 16-pixel patches.
LOW_RES_FACTOR = 4


class SAMed(nn.Module):
    """SAMed network; sizes as in :data:`VARIANTS` (tests build tiny ones).

    Args:
        img_size: side of the square input (512).
        num_classes: foreground classes K; the output has K + 1 channels.
        rank: LoRA rank.
        patch_size, embed_dim, depth, num_heads, global_attn_indexes, window_size: the SAM image encoder.
        prompt_dim, decoder_depth, decoder_heads, decoder_mlp_dim: prompt space and two-way transformer.

    Raises:
        ConfigurationError: ``img_size`` not a multiple of ``patch_size``; ``num_classes`` or ``rank`` < 1.
    """

    def __init__(
        self,
        img_size: int,
        num_classes: int,
        rank: int,
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
        if img_size % patch_size or num_classes < 1 or rank < 1:
            raise ConfigurationError(
                f"SAMed: img_size {img_size} must be a multiple of patch_size {patch_size}, num_classes ({num_classes}) "
                f"and rank ({rank}) at least 1"
            )
        self.img_size = img_size
        self.low_res_size = img_size // patch_size * LOW_RES_FACTOR
        self.num_classes = num_classes
        self.rank = rank
        encoder = ViTEncoder(
            ndim=2,
            img_size=img_size,
            patch_size=patch_size,
            in_chans=3,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            out_chans=prompt_dim,
            window_size=window_size,
            global_attn_indexes=global_attn_indexes,
        )
        for p in encoder.parameters():
            p.requires_grad_(False)
        self.image_encoder = add_qv_lora(encoder, rank)
        self.prompt_encoder = PromptEncoder(2, prompt_dim, img_size // patch_size, img_size, num_point_embeddings=4)
        self.mask_decoder = MaskDecoder(
            2,
            prompt_dim,
            TwoWayTransformer(decoder_depth, prompt_dim, decoder_heads, decoder_mlp_dim, downsample=2),
            num_multimask_outputs=num_classes,
        )

    @classmethod
    def build(cls, variant: str = "vit_b", **overrides: Any) -> SAMed:
        """The named variant (:data:`VARIANTS`) with ``overrides`` replacing its sizes.

        Raises:
            ConfigurationError: unknown variant.
        """
        return cls(**variant_settings(VARIANTS, variant, overrides, "SAMed"))

    @classmethod
    def vit_b(cls, **overrides: Any) -> SAMed:
        """SAMed on SAM ViT-B (512 input, 8 classes, rank 4 unless overridden)."""
        return cls.build("vit_b", **overrides)

    @classmethod
    def vit_h(cls, **overrides: Any) -> SAMed:
        """SAMed_h: SAMed on SAM ViT-H."""
        return cls.build("vit_h", **overrides)

    def lora_parameters(self) -> list[nn.Parameter]:
        """The encoder's LoRA factors (A_q, B_q, A_v, B_v per block)."""
        return lora_parameters(self.image_encoder)

    def _check(self, image: torch.Tensor) -> None:
        expected = (3, self.img_size, self.img_size)
        if image.ndim != 4 or tuple(image.shape[1:]) != expected:
            raise ConfigurationError(f"SAMed takes images (B, {', '.join(map(str, expected))}); got {tuple(image.shape)}")

    def low_res_logits(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, K + 1, L, L) logits, L = :attr:`low_res_size` (S/4 with 16-pixel patches)."""
        self._check(image)
        embedding = self.image_encoder(image)
        b = embedding.shape[0]
        sparse = embedding.new_zeros(b, 0, embedding.shape[1])
        dense = self.prompt_encoder.embed_mask(None, b).to(embedding.dtype)
        masks, _ = self.mask_decoder.predict_masks(embedding, self.prompt_encoder.dense_pe().to(embedding.dtype), sparse, dense)
        return masks

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, K + 1, S, S) logits."""
        low = self.low_res_logits(image)
        return F.interpolate(low, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
