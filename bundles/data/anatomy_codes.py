"""SNOMED CT codes of anatomical structure names, for any family's output (DICOM-SEG segment codes).

The table is data (``anatomy_codes.json``, with the source of its codes): plain structure names of the
project vocabulary (``"liver"``, ``"kidney"``, ``"gallbladder"``) -> SNOMED CT code. A ``left ``/``right ``
prefix becomes a laterality modifier of the structure's code (``"left kidney"`` -> Kidney + Left), except for
the structures whose side is part of the structure itself (``"left heart ventricle"`` -> Left Ventricle).
Names are matched after lower-casing, reading ``_`` as a space and dropping a leading modality
(``"CT_Liver"`` -> ``"liver"``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from bundles.errors import PromptError
from bundles.io.modality import normalize_modality

__all__ = ["Code", "StructureCodes", "structure_codes"]


@dataclass(frozen=True)
class Code:
    """One coded concept: ``value`` in coding ``scheme`` (``"SCT"`` = SNOMED CT), with its ``meaning``."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class StructureCodes:
    """Codes of one structure name: ``category`` (always "Anatomical Structure"), ``type`` (the structure,
    or the unknown-structure code) and ``laterality`` (Left/Right modifier of ``type``, or None)."""

    category: Code
    type: Code
    laterality: Code | None


@dataclass(frozen=True)
class _Table:
    category: Code
    unknown: Code
    laterality: dict[str, Code]
    sided: dict[str, Code]
    structures: dict[str, Code]


@lru_cache(maxsize=1)
def _table() -> _Table:
    data = json.loads(resources.files("bundles.data").joinpath("anatomy_codes.json").read_text(encoding="utf-8"))
    scheme = data["scheme"]

    def code(entry: dict) -> Code:
        return Code(entry["code"], scheme, entry["meaning"])

    def by_name(entries: list[dict]) -> dict[str, Code]:
        return {name: code(entry) for entry in entries for name in entry["names"]}

    return _Table(
        category=code(data["category"]),
        unknown=code(data["unknown_structure"]),
        laterality={side: code(entry) for side, entry in data["laterality"].items()},
        sided=by_name(data["sided_structures"]),
        structures=by_name(data["structures"]),
    )


def _plain_name(name: str) -> str:
    """Lower case, single spaces, ``_`` read as a space, no leading modality (``ct_``, ``mri ``, ...)."""
    term = re.sub(r"[\s_]+", " ", str(name).strip().lower())
    first, _, rest = term.partition(" ")
    try:
        normalize_modality(first)
    except PromptError:
        return term
    return rest or term


def structure_codes(name: str) -> StructureCodes:
    """Category, type and laterality codes of a structure name.

    ``"liver"`` -> Liver (10200004); ``"left kidney"`` -> Kidney (64033007) + Left (7771000);
    ``"right adrenal gland"`` -> Adrenal gland + Right (24028007); ``"left heart atrium"`` -> Left atrium
    (82471001), no modifier. Any other name (a lesion, a tumour, an unlisted structure) gets the
    unknown-structure type "Anatomical Structure" (91723000). The category is "Anatomical Structure"
    (123037004) in all cases.
    """
    table = _table()
    term = _plain_name(name)
    if term in table.sided:
        return StructureCodes(table.category, table.sided[term], None)
    side, _, rest = term.partition(" ")
    modifier = None
    if side in table.laterality and rest:
        term, modifier = rest, table.laterality[side]
    if term not in table.structures:
        return StructureCodes(table.category, table.unknown, None)
    return StructureCodes(table.category, table.structures[term], modifier)

