"""Imaging modality names, the one spelling every family and case list uses.

Canonical names ``ct``, ``mri``, ``us``, ``pet`` (SAT's modality prefixes, SAT-DS ``terminology_list.json``);
``mr`` is accepted for ``mri``. Families that embed the modality (SAT's ``modality_embed``) map these names
to their own indices.
"""

from __future__ import annotations

from bundles.errors import PromptError

__all__ = ["MODALITIES", "normalize_modality"]

#: Canonical modality names, in SAT's ``modality_embed`` row order (SAT ``model/text_encoder.py``).
MODALITIES: tuple[str, ...] = ("ct", "mri", "us", "pet")

#: Spellings accepted for each modality (exact, after lower-casing and stripping).
_MODALITY_ALIASES: dict[str, str] = {"ct": "ct", "mri": "mri", "mr": "mri", "pet": "pet", "us": "us"}


def normalize_modality(modality: str) -> str:
    """Return the canonical modality name (``"ct"``, ``"mri"``, ``"us"`` or ``"pet"``).

    Accepts exactly ``ct``, ``mri``/``mr``, ``pet`` and ``us``, case-insensitive and stripped; no
    substring guessing (``"ct scan"`` or ``"t1 mri"`` are refused).

    Raises:
        PromptError: anything else; the message lists the accepted values.
    """
    key = modality.strip().lower() if isinstance(modality, str) else None
    if key not in _MODALITY_ALIASES:
        raise PromptError(
            f"unknown modality {modality!r}; accepted values are {', '.join(sorted(_MODALITY_ALIASES))} "
            "(case-insensitive; 'mr' means 'mri')"
        )
    return _MODALITY_ALIASES[key]
