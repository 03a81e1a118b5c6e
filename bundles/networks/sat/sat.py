"""SAT: text-prompted 3D segmentation network (our implementation of the official ``Maskformer``, official SAT model/maskformer.py).

Data flow for a crop (B, 1, X, Y, Z) and query embeddings (B, Q, 768):
U-Net -> encoder skips + decoder features; every skip is block-averaged to the 1/32 token grid, concatenated
on channels and projected to ``query_dim`` (``projection_layer``) -> image tokens; the query decoder turns
each query into a mask embedding (``mask_embed_proj``); logits = dot product of the mask embedding with the
full-resolution decoder feature at each voxel (no bias, no scale, no upsampling).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bundles.errors import ConfigurationError
from bundles.networks.sat.conv_blocks import init_he
from bundles.networks.sat.positional_encoding import PositionalEncoding3D
from bundles.networks.sat.query_decoder import QueryDecoder
from bundles.networks.sat.unet import PlainConvUNet
from bundles.networks.variants import variant_settings

__all__ = ["SAT", "NANO", "PRO", "VARIANTS"]

#: Official sizes (model/maskformer.py, 'UNET' = SAT-Nano and 'UNET-L' = SAT-Pro).
NANO = dict(
    features=(64, 64, 128, 256, 512, 768),
    convs_per_stage=2,
    projection_hidden=768,
    mask_embed_hidden=256,
    deep_supervision_hidden=(256, 384, 512),
)
PRO = dict(
    features=(128, 128, 256, 512, 1024, 1536),
    convs_per_stage=3,
    projection_hidden=1536,
    mask_embed_hidden=384,
    deep_supervision_hidden=(384, 512, 512),
)

#: Named variants (segment-anything's ``sam_model_registry`` pattern): configs name ``SAT.nano`` / ``SAT.pro``.
VARIANTS = {"nano": NANO, "pro": PRO}

#: The official first conv takes the 1-channel image repeated 3 times (model/maskformer.py, input_channels=3).
IMAGE_REPEATS = 3
#: Deep supervision: logits at full, 1/2, 1/4 and 1/8 resolution (official train_forward).
DEEP_SUPERVISION_LEVELS = 3


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear -> GELU -> Linear -> GELU (keys ``0.*`` and ``2.*``)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim), nn.GELU())


class SAT(nn.Module):
    """SAT segmentation network.

    Args:
        roi_size: the crop (X, Y, Z) the bundle uses; each must be divisible by 32. Other sizes divisible
            by 32 also work at run time (the positional encoding follows the token grid).
        features: channels of the six U-Net stages.
        convs_per_stage: convs per encoder and decoder stage.
        projection_hidden: hidden width of ``projection_layer`` (concatenated skips -> query_dim).
        mask_embed_hidden: hidden width of ``mask_embed_proj`` (query_dim -> features[0]).
        deep_supervision: build ``mid_mask_embed_proj`` heads; in training mode return 4 logit maps.
        deep_supervision_hidden: hidden widths of the three mid heads (1/2, 1/4, 1/8 resolution).
        max_queries: queries per query-decoder pass (results do not depend on it).
        query_dim, decoder_layers, heads, ffn_dim, dropout: query decoder geometry.

    Raises:
        ConfigurationError: ``roi_size`` is not 3 sizes divisible by 32, or sizes are inconsistent.
    """

    def __init__(
        self,
        roi_size: Sequence[int],
        features: Sequence[int] = NANO["features"],
        convs_per_stage: int = 2,
        projection_hidden: int = 768,
        mask_embed_hidden: int = 256,
        deep_supervision: bool = False,
        deep_supervision_hidden: Sequence[int] = NANO["deep_supervision_hidden"],
        max_queries: int = 256,
        query_dim: int = 768,
        decoder_layers: int = 6,
        heads: int = 8,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
    ):
        super().__init__()
        if len(features) < DEEP_SUPERVISION_LEVELS + 2:
            raise ConfigurationError(f"SAT needs at least 5 U-Net stages, got features={tuple(features)}")
        if max_queries < 1:
            raise ConfigurationError(f"max_queries must be >= 1, got {max_queries}")
        self.features = tuple(int(f) for f in features)
        self.divisor = 2 ** (len(self.features) - 1)
        self.roi_size = self.check_spatial_size(roi_size)
        self.max_queries = int(max_queries)
        self.query_dim = int(query_dim)
        self.deep_supervision = bool(deep_supervision)

        self.backbone = PlainConvUNet(IMAGE_REPEATS, self.features, convs_per_stage)
        init_he(self.backbone)
        self.projection_layer = _mlp(sum(self.features), projection_hidden, query_dim)
        self.positional_encoding = PositionalEncoding3D(query_dim)
        self.transformer_decoder = QueryDecoder(query_dim, heads, ffn_dim, dropout, decoder_layers)
        if self.deep_supervision:
            self.mid_mask_embed_proj = nn.ModuleList(
                _mlp(query_dim, hidden, self.features[level + 1])
                for level, hidden in zip(range(DEEP_SUPERVISION_LEVELS), deep_supervision_hidden, strict=True)
            )
        self.mask_embed_proj = _mlp(query_dim, mask_embed_hidden, self.features[0])

    @classmethod
    def nano(cls, roi_size: Sequence[int], **kwargs) -> SAT:
        """SAT-Nano ('UNET', 110M parameters with deep supervision)."""
        return cls(roi_size, **{**NANO, **kwargs})

    @classmethod
    def pro(cls, roi_size: Sequence[int], **kwargs) -> SAT:
        """SAT-Pro ('UNET-L', 477M parameters with deep supervision)."""
        return cls(roi_size, **{**PRO, **kwargs})

    @classmethod
    def build(cls, variant: str, roi_size: Sequence[int], **kwargs) -> SAT:
        """The named variant (``"nano"`` or ``"pro"``, :data:`VARIANTS`) with ``kwargs`` overriding its sizes.

        Raises:
            ConfigurationError: unknown variant.
        """
        return cls(roi_size, **variant_settings(VARIANTS, variant, kwargs, "SAT"))

    def check_spatial_size(self, size: Sequence[int]) -> tuple[int, int, int]:
        """Return ``size`` as a tuple after checking it has 3 positive entries divisible by 32.

        Raises:
            ConfigurationError: naming the size.
        """
        size = tuple(int(s) for s in size)
        if len(size) != 3 or any(s <= 0 or s % self.divisor for s in size):
            raise ConfigurationError(
                f"SAT spatial size {size} is not 3 positive sizes divisible by {self.divisor} (the U-Net "
                "downsamples 5 times); pad or crop the image window to a multiple of 32"
            )
        return size

    def _tokens(self, skips: list[torch.Tensor]) -> torch.Tensor:
        """Skips -> image tokens (B, N_tok, query_dim), tokens in (x, y, z) order on the 1/32 grid.

        Each skip is averaged over blocks of (32 / 2**s)^3 voxels (official AvgPool3d(k, k)), in float32.
        """
        pooled = []
        for skip in skips:
            k = skip.shape[2] // skips[-1].shape[2]
            blocks = skip.unflatten(2, (-1, k)).unflatten(4, (-1, k)).unflatten(6, (-1, k))
            pooled.append(blocks.mean(dim=(3, 5, 7), dtype=torch.float32).to(skip.dtype))
        tokens = torch.cat(pooled, dim=1).flatten(2).transpose(1, 2)
        return self.projection_layer(tokens)

    def _check_inputs(self, image: torch.Tensor, queries: torch.Tensor) -> None:
        if image.ndim != 5 or image.shape[1] != 1:
            raise ConfigurationError(f"SAT expects an image of shape (B, 1, X, Y, Z), got {tuple(image.shape)}")
        self.check_spatial_size(image.shape[2:])
        if queries.ndim != 3 or queries.shape[0] != image.shape[0] or queries.shape[2] != self.query_dim:
            raise ConfigurationError(
                f"SAT expects queries of shape (B={image.shape[0]}, Q, {self.query_dim}), got {tuple(queries.shape)}"
            )

    def forward(self, image: torch.Tensor, queries: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Segment ``queries`` in ``image``.

        Args:
            image: normalised crop (B, 1, X, Y, Z), X, Y, Z divisible by 32.
            queries: query (text) embeddings (B, Q, query_dim).

        Returns:
            logits before sigmoid (B, Q, X, Y, Z) (the dtype autocast gives). In training mode with deep
            supervision: [full, 1/2, 1/4, 1/8 resolution] logit maps (B, Q, X / 2**l, Y / 2**l, Z / 2**l).

        Raises:
            ConfigurationError: wrong image or query shape, or a size not divisible by 32.
        """
        self._check_inputs(image, queries)
        all_scales = self.deep_supervision and self.training
        x = image.expand(-1, IMAGE_REPEATS, -1, -1, -1)
        skips = self.backbone.encoder(x)
        grid = skips[-1].shape[2:]
        memory = self._tokens(skips)
        pixel_maps = self.backbone.decoder(skips, all_scales)
        pos = self.positional_encoding(grid, memory.device)
        queries = queries.to(self.transformer_decoder.norm.weight.dtype)  # bfloat16 with bfloat16 weights
        heads = [self.mask_embed_proj, *self.mid_mask_embed_proj] if all_scales else [self.mask_embed_proj]

        per_chunk = []
        for chunk in torch.split(queries, self.max_queries, dim=1):
            embedded = self.transformer_decoder(chunk, memory, pos)
            per_chunk.append([self._logits(head(embedded), pixels) for head, pixels in zip(heads, pixel_maps)])
        levels = [torch.cat(level, dim=1) if len(level) > 1 else level[0] for level in zip(*per_chunk)]
        return levels if all_scales else levels[0]

    @staticmethod
    def _logits(mask_embedding: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """(B, Q, C) mask embeddings . (B, C, X, Y, Z) per-voxel features -> (B, Q, X, Y, Z)."""
        flat = torch.matmul(mask_embedding, pixels.flatten(2).to(mask_embedding.dtype))
        return flat.unflatten(2, pixels.shape[2:])
