"""Imaging modality names, the one spelling every family and case list uses.

Canonical names ``ct``, ``mri``, ``us``, ``pet``; ``mr`` is accepted for ``mri``. Their order carries no
meaning: a family whose weights embed the modality keeps its own name -> row table next to its network.
"""

from __future__ import annotations

from bundles.errors import PromptError

__all__ = ["MODALITIES", "normalize_modality"]

#: Canonical modality names (what :func:`normalize_modality` returns).
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
