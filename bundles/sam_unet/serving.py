"""SAM-UNet in MONAI Label: one object per request, given by a box and/or clicks.

``box``: ``[i0, j0, k0, i1, j1, k1]`` inclusive voxel corners of the original image (slices ``k0..k1`` are
segmented); clicks as Slicer (``foreground`` / ``background``) or OHIF (``points`` + ``point_labels``) send
them; ``label`` names the object (default ``object``). SAM-UNet's own prompt check refuses boxes and
clicks outside the image (422).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bundles.engines.loaded_bundle import LoadedBundle
from bundles.sam_unet.sa_med2d import write_sa_med2d
from bundles.serving import request_values
from bundles.serving.infer_task import CaseInfer
from bundles.serving.limits import RequestLimits
from bundles.serving.train_data import case_list

__all__ = ["BoxInfer", "infer_task", "train_data"]


class BoxInfer(CaseInfer):
    def __init__(self, served: LoadedBundle, limits: RequestLimits):
        super().__init__(served, type="deepgrow", labels=[], dimension=3,
                         description="SAM-UNet: draw a box (request value 'box') or click inside / outside an object, slice by slice",
                         limits=limits)

    def case_fields(self, request: Mapping[str, Any]) -> dict[str, Any]:
        obj = request_values.prompt_object(request, box=True)
        self.limits.check_clicks(len(obj["points"]))
        return {"objects": [obj]}


def infer_task(served: LoadedBundle, conf: Mapping[str, str]) -> BoxInfer:
    """The task of the app (``conf``: the server's options, for the request bounds)."""
    return BoxInfer(served, RequestLimits.from_conf(conf))


def train_data(cases: Sequence[Mapping[str, Any]], run_dir: str | Path) -> str:
    """``/train``'s cases as the SA-Med2D folder SAM-UNet's sampler reads (``<run_dir>/sa_med2d``: every axial
    slice with an object as PNGs and the train index); the ``serving_train_data`` hook of its ``train.json``."""
    folder = Path(run_dir) / "sa_med2d"
    write_sa_med2d(case_list(cases, run_dir), folder, "train")
    return str(folder)
