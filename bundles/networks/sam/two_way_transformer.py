"""SAM's two-way transformer: prompt tokens and image tokens attend to each other (dimension-free).

Each layer: token self-attention (without positional encoding in layer 0) -> norm1 -> tokens attend to
the image -> norm2 -> MLP (ReLU) -> norm3 -> the image attends to the tokens -> norm4. After the layers a
final token-to-image attention and ``norm_final_attn``. Cross-attentions project to ``dim / downsample``
channels. (segment-anything ``modeling/transformer.py``, SAM-Med3D ``TwoWayTransformer3D``.)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bundles.networks.sam.mlp import FeedForward

__all__ = ["TokenAttention", "TwoWayBlock", "TwoWayTransformer"]


class TokenAttention(nn.Module):
    """Multi-head attention with separate q/k/v projections to ``dim // downsample`` channels."""

    def __init__(self, dim: int, num_heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Nq, dim), k and v (B, Nk, dim) -> (B, Nq, dim)."""
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        attn = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1]), dim=-1)
        out = (attn @ v).transpose(1, 2)
        return self.out_proj(out.reshape(out.shape[0], out.shape[1], -1))


class TwoWayBlock(nn.Module):
    """One layer of the two-way transformer (keys ``self_attn``, ``cross_attn_token_to_image``,
    ``cross_attn_image_to_token``, ``mlp``, ``norm1..4``)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, downsample: int, skip_first_pe: bool) -> None:
        super().__init__()
        self.self_attn = TokenAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = TokenAttention(dim, num_heads, downsample)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = TokenAttention(dim, num_heads, downsample)
        self.skip_first_pe = skip_first_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Args: depth (2), dim (256 in 2D SAM, 384 in SAM-Med3D), num_heads (8), mlp_dim (2048),
    downsample (2: cross-attentions work in dim / 2 channels).

    ``forward(image (B, dim, *grid), image_pe (B, dim, *grid), tokens (B, T, dim))`` ->
    (tokens (B, T, dim), image tokens (B, prod(grid), dim)).
    """

    def __init__(self, depth: int, dim: int, num_heads: int, mlp_dim: int, downsample: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, num_heads, mlp_dim, downsample, skip_first_pe=(i == 0)) for i in range(depth))
        self.final_attn_token_to_image = TokenAttention(dim, num_heads, downsample)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        attn = self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries + attn), keys
