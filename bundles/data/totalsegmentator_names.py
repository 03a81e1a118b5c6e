"""TotalSegmentator class names (``kidney_left``) -> anatomical names (``left kidney``).

``totalsegmentator_names.json`` maps every class of TotalSegmentator v1, v2 and its MR task (``class_map``
``total_v1``, ``total``, ``total_mr`` of its ``map_to_binary.py``) to the anatomical name as SAT's
vocabulary spells it, and names the classes the shipped example scans' legends keep per modality. The
shipped example scans' reference masks are TotalSegmentator label maps; SAT also accepts the class names
as prompt aliases.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from bundles.io.modality import normalize_modality

__all__ = ["totalsegmentator_classes", "totalsegmentator_terms"]


@cache
def _table() -> dict:
    return json.loads(resources.files("bundles.data").joinpath("totalsegmentator_names.json").read_text(encoding="utf-8"))


def totalsegmentator_classes() -> dict[str, str]:
    """Every TotalSegmentator v1, v2 and MR class name -> its anatomical name (128 names, v2 order first)."""
    return dict(_table()["classes"])


@cache
def totalsegmentator_terms(modality: str) -> dict[str, str]:
    """The example scans' legend for ``modality`` (``ct``, ``mri``, ...): class name -> anatomical name
    (a SAT term of that modality); ``{}`` for a modality without example scans.

    Raises:
        PromptError: unknown modality.
    """
    classes = _table()["classes"]
    return {name: classes[name] for name in _table()["example_legend"].get(normalize_modality(modality), [])}
