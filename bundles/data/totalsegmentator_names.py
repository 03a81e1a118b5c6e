"""TotalSegmentator class names (``kidney_left``) -> anatomical names (``left kidney``), per modality.

The shipped example scans' reference masks are TotalSegmentator label maps; their legends use these names.
The table (``totalsegmentator_names.json``) lists a class under a modality only where SAT's vocabulary has
the name for that modality, so SAT also accepts the TotalSegmentator spellings as prompt aliases.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from bundles.io.modality import normalize_modality

__all__ = ["totalsegmentator_terms"]


@lru_cache(maxsize=None)
def totalsegmentator_terms(modality: str) -> dict[str, str]:
    """TotalSegmentator class name -> anatomical name for ``modality`` (``ct``, ``mri``, ...).

    Raises:
        PromptError: unknown modality.
    """
    table = json.loads(resources.files("bundles.data").joinpath("totalsegmentator_names.json").read_text(encoding="utf-8"))
    return dict(table.get(normalize_modality(modality), {}))
