"""The relative position bias exactly as SAM-Med3D's weights were trained with it.

The official ``add_decomposed_rel_pos`` (``image_encoder3D.py``) indexes the three per-axis biases with
``rel_d[:, :, :, :, None, None]``, ``rel_h[:, :, :, None, :, None]`` and ``rel_w[:, :, :, None, None, :]``
on (B, Qd, Qh, Qw, K) tensors. Broadcast against the logits (B, Qd, Qh, Qw, Kd, Kh, Kw), that adds, for
query (i, j, l) and key (m, n, o):

    rel_d[b, i, j, l, o] + rel_h[b, i, j, m, o] + rel_w[b, i, j, n, o]

which is not the decomposed bias of 2D SAM (``rel_d[..., m] + rel_h[..., n] + rel_w[..., o]`` of the
query's own (i, j, l)); it runs only because every grid side is equal (8, or 14 in windows). The released
tables were learned under this indexing, so the official outputs need it (our check against the official
module with random weights and tables: the image embedding differs by up to 0.16 with the 2D-style bias, and
is identical with this one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["add_sam_med3d_rel_pos"]


def add_sam_med3d_rel_pos(attn: torch.Tensor, q: torch.Tensor, rel: Sequence[torch.Tensor], grid: tuple[int, ...]) -> torch.Tensor:
    """attn (B, N, N), q (B, N, C), per-axis lookups (S, S, C) for a cubic grid (S, S, S) -> attn."""
    b, n, c = q.shape
    sd, sh, sw = grid
    r_q = q.reshape(b, sd, sh, sw, c)
    rel_d = torch.einsum("bdhwc,dkc->bdhwk", r_q, rel[0])
    rel_h = torch.einsum("bdhwc,hkc->bdhwk", r_q, rel[1])
    rel_w = torch.einsum("bdhwc,wkc->bdhwk", r_q, rel[2])
    out = attn.view(b, sd, sh, sw, sd, sh, sw)
    out = out + rel_d[:, :, :, :, None, None] + rel_h[:, :, :, None, :, None] + rel_w[:, :, :, None, None, :]
    return out.reshape(b, n, n)
