"""SAMed in MONAI Label: an automatic model; every request segments its classes on the whole volume,
slice by slice. Prompts in a request are ignored (clients may send their defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bundles.engines.loaded_bundle import LoadedBundle
from bundles.serving.infer_task import CaseInfer
from bundles.serving.limits import RequestLimits

__all__ = ["AutomaticInfer", "infer_task"]


class AutomaticInfer(CaseInfer):
    def __init__(self, served: LoadedBundle, limits: RequestLimits):
        names = list(served.value("class_names"))
        super().__init__(served, type="segmentation", labels={name: i + 1 for i, name in enumerate(names)}, dimension=3,
                         description=f"SAMed (LoRA on SAM): {', '.join(names)} on every axial slice, no prompts", limits=limits)

    def case_fields(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return {}


def infer_task(served: LoadedBundle, conf: Mapping[str, str]) -> AutomaticInfer:
    """The task of the app (``conf``: the server's options)."""
    return AutomaticInfer(served, RequestLimits.from_conf(conf))
