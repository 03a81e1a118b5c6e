"""Common part of SAT's text encoders: term normalisation and the learned modality embedding.

SAT turns every label into one 768-d query: the bare lower-cased label name goes through a text tower,
and the modality is added as a learned embedding row (``modality_embed = nn.Embedding(4, 768)``; rows in
:data:`bundles.networks.sat.modality_rows.MODALITY_ROWS` order). The modality is never part of the text.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bundles.errors import PromptError
from bundles.networks.sat.modality_rows import MODALITY_ROWS, modality_row
from bundles.networks.sat.term_text import normalize_term

__all__ = ["QUERY_DIM", "TextQueryEncoder", "mean_pool"]

#: Initial std of ``modality_embed`` rows for encoders trained from scratch (ours; the usual transformer
#: embedding init), so the modality does not dominate the text part of the query.
MODALITY_INIT_STD = 0.02

#: Width of SAT's text queries and of the query decoder (SAT ``model/maskformer.py``).
QUERY_DIM = 768


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average ``hidden`` (N, L, D) over the tokens where ``mask`` (N, L) is true -> (N, D)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class TextQueryEncoder(nn.Module):
    """Maps (terms, modality) to SAT query embeddings (N, 768).

    Subclasses implement :meth:`pooled` (text -> tower features) and :attr:`tower`; :meth:`project` maps
    tower features to the 768-d query space (identity unless the encoder has a projection layer).

    Args:
        num_modalities: rows of ``modality_embed``; 4 for SAT main (ct, mri, us, pet).
    """

    def __init__(self, num_modalities: int = len(MODALITY_ROWS)):
        super().__init__()
        self.modality_embed = nn.Embedding(num_modalities, QUERY_DIM)
        # PyTorch's N(0, 1) rows (norm ~28) would swamp the projected text (norm ~1) and make every query of
        # a fresh encoder nearly identical; released checkpoints overwrite this initialisation anyway.
        nn.init.normal_(self.modality_embed.weight, std=MODALITY_INIT_STD)

    @property
    def tower(self) -> nn.Module:
        """The Hugging Face transformer inside the encoder."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return self.modality_embed.weight.device

    def pooled(self, texts: list[str]) -> torch.Tensor:
        """Tower features (N, D) of already normalised ``texts``, before any projection."""
        raise NotImplementedError

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """Map tower features (N, D) to query space (N, 768); identity by default."""
        return pooled

    def modality_codes(self, modality: str | Sequence[str], n: int) -> torch.Tensor:
        """Codes (n,) for one modality shared by all terms, or one modality per term.

        Raises:
            PromptError: an unknown modality (or one SAT has no row for), or a per-term list of the wrong length.
        """
        if isinstance(modality, str):
            rows = [modality_row(modality)] * n
        else:
            rows = [modality_row(m) for m in modality]
            if len(rows) != n:
                raise PromptError(f"got {n} terms but {len(rows)} modalities; give one modality or one per term")
        return torch.tensor(rows, dtype=torch.long, device=self.device)

    def forward(self, terms: Sequence[str], modality: str | Sequence[str]) -> torch.Tensor:
        """Query embeddings (N, 768) of ``terms`` (lower-cased, stripped) for ``modality``.

        Raises:
            PromptError: ``terms`` is empty, a bare string, or holds an empty term; an unknown modality.
        """
        if isinstance(terms, str) or not terms:
            raise PromptError(f"expected a non-empty list of terms, got {terms!r}")
        texts = [normalize_term(t) for t in terms]
        codes = self.modality_codes(modality, len(texts))
        return self.project(self.pooled(texts)) + self.modality_embed(codes)
