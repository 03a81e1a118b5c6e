"""Named network variants (segment-anything's ``sam_model_registry`` pattern): one lookup for every family.

A family's network lists its released sizes in a ``VARIANTS`` dict and builds one with
``variant_settings(VARIANTS, name, overrides, family)``; configs name the builder (``SAMed.vit_b``,
``SAMUNet.res34``) rather than restating sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bundles.errors import ConfigurationError

__all__ = ["variant_settings"]


def variant_settings(variants: Mapping[str, Mapping[str, Any]], name: str, overrides: Mapping[str, Any], family: str) -> dict[str, Any]:
    """The sizes of variant ``name`` with ``overrides`` replacing some of them.

    Raises:
        ConfigurationError: unknown variant (the known ones listed).
    """
    if name not in variants:
        raise ConfigurationError(f"unknown {family} variant {name!r}; choose one of {', '.join(variants)}")
    return {**variants[name], **overrides}
