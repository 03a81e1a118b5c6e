"""The SAT query decoder: DETR-style pre-norm layers with cross-attention only (official SAT model/maskformer.py).

Each layer, for queries t (B, Q, D) and image tokens m (B, N, D) with key positional encoding p (N, D):
    t <- t + dropout(MHA(query=norm2(t), key=m + p, value=m))
    t <- t + dropout(linear2(dropout(relu(linear1(norm3(t))))))
``norm1`` exists (the official layer keeps it, so it is in the checkpoint) but is never used. The stack ends
with a LayerNorm. Queries never attend to each other, so any split of the queries gives the same result.
Defaults (d 768, 8 heads, FFN 2048, dropout 0.1) are the official ``model/transformer_decoder.py`` /
``model/maskformer.py`` values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossAttentionLayer", "QueryDecoder"]


class CrossAttentionLayer(nn.Module):
    """One pre-norm cross-attention + feed-forward layer; tensors are batch-first (B, L, D)."""

    def __init__(self, dim: int = 768, heads: int = 8, ffn_dim: int = 2048, dropout: float = 0.1):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)  # unused, kept for the official keys
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, D), memory = values (B, N, D), keys = memory + positional encoding (B, N, D)."""
        attended, _ = self.multihead_attn(self.norm2(queries), keys, memory, need_weights=False)
        queries = queries + self.dropout2(attended)
        hidden = self.linear2(self.dropout(F.relu(self.linear1(self.norm3(queries)))))
        return queries + self.dropout3(hidden)


class QueryDecoder(nn.Module):
    """``layers`` :class:`CrossAttentionLayer` + final LayerNorm: (B, Q, D) queries -> (B, Q, D)."""

    def __init__(self, dim: int = 768, heads: int = 8, ffn_dim: int = 2048, dropout: float = 0.1, layers: int = 6):
        super().__init__()
        self.layers = nn.ModuleList(CrossAttentionLayer(dim, heads, ffn_dim, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, D); memory (B, N, D) image tokens; pos (N, D) positional encoding added to keys."""
        keys = (memory.float() + pos.float()).to(memory.dtype)
        for layer in self.layers:
            queries = layer(queries, memory, keys)
        return self.norm(queries)
