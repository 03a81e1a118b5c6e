"""The ViT image encoder of SAM in 2D or 3D (segment-anything ``ImageEncoderViT``, SAM-Med3D ``ImageEncoderViT3D``).

Data flow for an image (B, in_chans, *(img_size,) * ndim):
patch embedding (conv, kernel = stride = patch) -> tokens kept channel-last (B, *grid, embed_dim), grid =
img_size // patch -> + learned absolute position embedding -> ``depth`` pre-norm blocks (windowed attention
with zero padding, or global attention at ``global_attn_indexes``, both with decomposed relative
positions) -> neck: conv 1 (no bias) -> channel layer norm -> conv 3 (no bias) -> channel layer norm ->
(B, out_chans, *grid).

Parameter names follow the official checkpoints (``patch_embed.proj``, ``pos_embed``, ``blocks.N.norm1``,
``.attn.qkv``, ``.attn.proj``, ``.attn.rel_pos_<axis>``, ``.norm2``, ``.mlp.lin1``/``lin2``, ``neck.0..3``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bundles.networks.sam import windows
from bundles.networks.sam.layer_norm import ChannelLayerNorm
from bundles.networks.sam.mlp import FeedForward
from bundles.networks.sam.rel_pos import AXIS_NAMES, RelPosAdder, add_decomposed, lookup

__all__ = ["ViTEncoder", "EncoderAttention", "EncoderBlock"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}


class EncoderAttention(nn.Module):
    """Multi-head self-attention over a channel-last grid (B, *grid, dim) with relative position biases.

    Logits are ``(q * head_dim**-0.5) @ k^T`` plus ``add_rel_pos`` of the unscaled q (official order), here
    as the additive mask of ``scaled_dot_product_attention`` (PyTorch's fused kernel; the same numbers).
    """

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, ...], add_rel_pos: RelPosAdder, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.grid = tuple(grid)
        self.add_rel_pos = add_rel_pos
        self.axis_names = AXIS_NAMES[-len(grid) :]
        for name, side in zip(self.axis_names, grid):
            setattr(self, f"rel_pos_{name}", nn.Parameter(torch.zeros(2 * side - 1, dim // num_heads)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *grid, dim) -> (B, *grid, dim)."""
        return self.proj(self.attend(self.qkv(x)))

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """The attention between the qkv layer and the output projection: (B, *grid, 3 * dim) -> (B, *grid, dim)."""
        b, *grid, three_dim = qkv.shape
        n = qkv[0, ..., 0].numel()
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, N, head_dim)
        rel = [lookup(getattr(self, f"rel_pos_{name}"), side) for name, side in zip(self.axis_names, grid)]
        flat_q = q.reshape(b * self.num_heads, n, -1)
        bias = self.add_rel_pos(flat_q.new_zeros(b * self.num_heads, n, n), flat_q, rel, tuple(grid))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.view(b, self.num_heads, n, n).to(q.dtype), scale=self.scale)
        return out.movedim(1, -2).reshape(b, *grid, three_dim // 3)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block; ``window > 0`` attends within zero-padded windows of that side."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        grid: tuple[int, ...],
        window: int,
        add_rel_pos: RelPosAdder,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        self.window = window
        attn_grid = (window,) * len(grid) if window > 0 else tuple(grid)
        # eps 1e-6: partial(nn.LayerNorm, eps=1e-6) in both official builders.
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EncoderAttention(dim, num_heads, attn_grid, add_rel_pos, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:  # qkv and proj on the real tokens only; the padding gets a zero token's qkv (windows.py)
            grid = tuple(x.shape[1:-1])
            zero_token_qkv = self.attn.qkv(x.new_zeros(1, x.shape[-1]))[0]
            qkv, padded = windows.partition(self.attn.qkv(x), self.window, zero_token_qkv)
            x = self.attn.proj(windows.unpartition(self.attn.attend(qkv), self.window, padded, grid))
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    """Conv with kernel = stride = patch; output channel-last (B, *grid, embed_dim) (key ``proj``)."""

    def __init__(self, ndim: int, patch: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = _CONV[ndim](in_chans, embed_dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).movedim(1, -1)


class ViTEncoder(nn.Module):
    """SAM's ViT image encoder for ``ndim`` = 2 or 3.

    Args:
        ndim: spatial dimensions.
        img_size: side of the (square / cubic) input.
        patch_size: side of a patch; the token grid has side ``img_size // patch_size``.
        in_chans: input channels (3 in 2D SAM, 1 in SAM-Med3D).
        embed_dim, depth, num_heads, mlp_ratio: transformer sizes.
        out_chans: channels of the neck's output (the image embedding).
        window_size: side of attention windows in non-global blocks.
        global_attn_indexes: blocks with global attention.
        add_rel_pos: how the per-axis relative position biases are added to the logits;
            :func:`~bundles.networks.sam.rel_pos.add_decomposed` unless a family's weights were trained
            with another broadcasting (SAM-Med3D).

    Shapes: ``forward`` (B, in_chans, *(img_size,) * ndim) -> (B, out_chans, *(img_size // patch_size,) * ndim).
    """

    def __init__(
        self,
        ndim: int,
        img_size: int,
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        out_chans: int,
        window_size: int,
        global_attn_indexes: Sequence[int],
        mlp_ratio: float = 4.0,
        add_rel_pos: RelPosAdder = add_decomposed,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        side = img_size // patch_size
        grid = (side,) * ndim
        self.patch_embed = _PatchEmbed(ndim, patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, *grid, embed_dim))
        self.blocks = nn.ModuleList(
            EncoderBlock(
                embed_dim,
                num_heads,
                mlp_ratio,
                grid,
                0 if i in set(global_attn_indexes) else window_size,
                add_rel_pos,
            )
            for i in range(depth)
        )
        conv = _CONV[ndim]
        self.neck = nn.Sequential(
            conv(embed_dim, out_chans, kernel_size=1, bias=False),
            ChannelLayerNorm(out_chans),
            conv(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            ChannelLayerNorm(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.movedim(-1, 1))
