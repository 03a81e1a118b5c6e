"""SAM-Med3D in MONAI Label: the core's click task (:mod:`bundles.serving.click_task`) on SAM-Med3D sessions,
whose second click on an image costs only the prompt encoder and the mask decoder.

Each client and image gets its own :class:`bundles.sam_med3d.session.SAMMed3DSession` (``fresh()`` of the
bundle's ``session``: the network is shared), holding the image on the 1.5 mm grid and up to 4 window
embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping

from bundles.engines.loaded_bundle import LoadedBundle
from bundles.serving.click_task import ClickInfer, click_task

__all__ = ["infer_task"]

DESCRIPTION = "SAM-Med3D: click inside (foreground) or outside (background) an object; each click refines it"


def infer_task(served: LoadedBundle, conf: Mapping[str, str]) -> ClickInfer:
    """The task of the app (``--conf max_sessions N``, ``--conf session_idle_seconds S``, the request bounds)."""
    return click_task(served, conf, lambda: served.component("session").fresh(), DESCRIPTION)
