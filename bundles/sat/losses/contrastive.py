"""Multi-positive, soft-target symmetric InfoNCE with a learnable temperature (SAT knowledge pretraining).

SAT-Pretrain's text-text stage (official SAT-Pretrain; SAT-Pretrain ``train/loss.py``) scores every anchor
against every candidate in the batch, and several candidates may be correct for one anchor (a term's
definition and its synonym in the same batch). The targets are the 0/1 match matrix with each column
L2-normalised, used as soft targets of a cross entropy in both directions (anchor -> candidates and
candidate -> anchors). The logit scale starts at 1/0.07 and is capped at 100 (CLIP's convention, kept by
SAT-Pretrain); it is learned in log space so it stays positive.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiPositiveInfoNCE", "match_matrix"]

#: Initial logit scale 1/0.07 and its upper bound 100 (official SAT-Pretrain).
INITIAL_SCALE = 1.0 / 0.07
MAX_SCALE = 100.0


def match_matrix(keys: list[str]) -> torch.Tensor:
    """Boolean (N, N) matrix, true where pair ``i`` and pair ``j`` share a key (same term = positives)."""
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    ids = torch.tensor([index[k] for k in keys])
    return ids[:, None] == ids[None, :]


class MultiPositiveInfoNCE(nn.Module):
    """Symmetric soft-target InfoNCE between anchors and candidates.

    ``forward(anchors (N, D), candidates (N, D), positives (N, N) bool) -> scalar``. Row ``i`` of
    ``positives`` marks the candidates that match anchor ``i``; the diagonal must be true (each anchor's own
    candidate). Features are L2-normalised inside.

    Raises:
        ValueError: shapes disagree or a diagonal entry of ``positives`` is false.
    """

    def __init__(self, initial_scale: float = INITIAL_SCALE, max_scale: float = MAX_SCALE):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(initial_scale)))
        self.max_log_scale = math.log(max_scale)

    @property
    def scale(self) -> torch.Tensor:
        """Current logit scale (= 1 / temperature), at most ``max_scale``."""
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    def forward(self, anchors: torch.Tensor, candidates: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        n = anchors.shape[0]
        if anchors.shape != candidates.shape or anchors.ndim != 2 or positives.shape != (n, n):
            raise ValueError(
                f"expected anchors and candidates (N, D) and positives (N, N), got {tuple(anchors.shape)}, "
                f"{tuple(candidates.shape)}, {tuple(positives.shape)}"
            )
        if not bool(positives.diagonal().all()):
            raise ValueError("every anchor must be a positive of its own candidate (diagonal of positives)")
        logits = self.scale * F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T
        targets = F.normalize(positives.to(logits.dtype), p=2, dim=0)
        forward = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        backward = -(targets.T * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
        return 0.5 * (forward + backward)
