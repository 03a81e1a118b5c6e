"""Low-rank adapters (LoRA) on the query and value slices of a fused qkv projection (SAMed's adaptation).

SAMed (hitachinsk/SAMed ``sam_lora_image_encoder.py``) adapts every block of SAM's image encoder by adding
``B_q A_q x`` to the first ``dim`` output channels of the fused ``qkv`` linear (the queries) and
``B_v A_v x`` to the last ``dim`` (the values); keys are untouched. Rank 4, no scaling (alpha = rank), no
dropout; A initialised like ``nn.Linear`` (Kaiming-uniform, a = sqrt 5), B zeros, so a fresh adapter leaves
the base output unchanged. The wrapped module keeps the original linear as ``qkv`` and names the factors
``linear_a_q``, ``linear_b_q``, ``linear_a_v``, ``linear_b_v`` (SAMed's state-dict names).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["QVLoRA", "add_qv_lora", "lora_parameters"]


class QVLoRA(nn.Module):
    """``qkv(x)`` with low-rank updates on its q and v slices; (..., dim) -> (..., 3 * dim).

    Args:
        qkv: the fused projection, ``nn.Linear(dim, 3 * dim)``; kept as ``self.qkv`` (frozen by the caller).
        rank: the rank r of every update (A: (r, dim), B: (dim, r)).
    """

    def __init__(self, qkv: nn.Linear, rank: int) -> None:
        super().__init__()
        dim = qkv.in_features
        self.qkv = qkv
        self.dim = dim
        self.rank = rank
        self.linear_a_q = nn.Linear(dim, rank, bias=False)
        self.linear_b_q = nn.Linear(rank, dim, bias=False)
        self.linear_a_v = nn.Linear(dim, rank, bias=False)
        self.linear_b_v = nn.Linear(rank, dim, bias=False)
        nn.init.zeros_(self.linear_b_q.weight)
        nn.init.zeros_(self.linear_b_v.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).split(self.dim, dim=-1)
        q = q + self.linear_b_q(self.linear_a_q(x))
        v = v + self.linear_b_v(self.linear_a_v(x))
        return torch.cat([q, k, v], dim=-1)


def add_qv_lora(encoder: nn.Module, rank: int) -> nn.Module:
    """Wrap the ``attn.qkv`` of every block of a :class:`~bundles.networks.sam.vit_encoder.ViTEncoder` in
    :class:`QVLoRA` (in place; SAMed adapts all blocks, windowed and global). Returns ``encoder``."""
    for block in encoder.blocks:
        block.attn.qkv = QVLoRA(block.attn.qkv, rank)
    return encoder


def lora_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The A and B factors of every :class:`QVLoRA` inside ``module``, in block order (A_q, B_q, A_v, B_v)."""
    params: list[nn.Parameter] = []
    for sub in module.modules():
        if isinstance(sub, QVLoRA):
            params += [sub.linear_a_q.weight, sub.linear_b_q.weight, sub.linear_a_v.weight, sub.linear_b_v.weight]
    return params
