"""Reusable parts of the segmentation-foundation-model bundles.

A family-neutral core, organised by concern like MONAI core: ``io`` (cases, reading, validating and
writing images), ``precision`` (device, layout, autocast), ``inferers`` (masks back on the input grid),
``engines`` (the per-case segmentation job, training, tracking), ``checkpoints`` (strict loading, release
records), ``transforms``, ``metrics``, ``data`` (demo data and shipped example scans) and
``visualize``; networks under ``networks/<family>``; and one package of glue per family (``sat``). The core
never imports a family. The bundle folders (``sat_nano/``, ``sat_pro/``, ...) only hold configuration that
points here through ``_target_``.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["segment", "open_session", "__version__"]


def __getattr__(name: str) -> Any:
    """``bundles.segment`` and ``bundles.open_session`` (:mod:`bundles.api`), imported on first use so that the
    configs' ``$import bundles`` stays light."""
    if name in ("segment", "open_session"):
        from bundles import api

        return getattr(api, name)
    raise AttributeError(f"module 'bundles' has no attribute {name!r}")
