"""SAT's modality embedding rows: which row of ``modality_embed`` each modality uses.

SAT adds a learned modality embedding to every text query (``modality_embed = nn.Embedding(4, 768)``). Its
released weights fix the row order ct 0, mri 1, us 2, pet 3 (SAT ``model/text_encoder.py``; official SAT
``model/maskformer.py``). The order belongs to those weights, not to the core's modality names
(:mod:`bundles.io.modality`): a modality the core learns later gets no row here, and SAT refuses it.
"""

from __future__ import annotations

from bundles.errors import PromptError
from bundles.io.modality import normalize_modality

__all__ = ["MODALITY_ROWS", "modality_row"]

#: Canonical modality names in SAT's ``modality_embed`` row order (row ``i`` embeds ``MODALITY_ROWS[i]``).
MODALITY_ROWS: tuple[str, ...] = ("ct", "mri", "us", "pet")


def modality_row(modality: str) -> int:
    """Row of ``modality_embed`` for ``modality`` (any spelling :func:`normalize_modality` accepts).

    Raises:
        PromptError: an unknown modality, or one SAT has no embedding row for.
    """
    name = normalize_modality(modality)
    if name not in MODALITY_ROWS:
        raise PromptError(f"SAT has no modality embedding for {name!r}; it knows {', '.join(MODALITY_ROWS)}")
    return MODALITY_ROWS.index(name)
