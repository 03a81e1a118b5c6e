"""Toy3D in MONAI Label: the core's click task (:mod:`bundles.serving.click_task`) on Toy3D sessions, one per
client and image (``fresh()`` of the bundle's ``session``: the network is shared); a later click on the same
image reuses its features."""

from __future__ import annotations

from collections.abc import Mapping

from bundles.engines.loaded_bundle import LoadedBundle
from bundles.serving.click_task import ClickInfer, click_task

__all__ = ["infer_task"]

DESCRIPTION = "Toy3D: click inside (foreground) or outside (background) a bright object; each click refines it"


def infer_task(served: LoadedBundle, conf: Mapping[str, str]) -> ClickInfer:
    """The task of the app (``--conf max_sessions N``, ``--conf session_idle_seconds S``, the request bounds)."""
    return click_task(served, conf, lambda: served.component("session").fresh(), DESCRIPTION)
