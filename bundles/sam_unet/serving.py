"""SAM-UNet in MONAI Label: one object per request, given by a box and/or clicks.

``box``: ``[i0, j0, k0, i1, j1, k1]`` inclusive voxel corners of the original image (slices ``k0..k1`` are
segmented); clicks as Slicer (``foreground`` / ``background``) or OHIF (``points`` + ``point_labels``) send
them; ``label`` names the object (default ``object``). SAM-UNet's own prompt check refuses boxes and
clicks outside the image (422).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bundles.serving import request_values
from bundles.serving.infer_task import CaseInfer
from bundles.serving.served_bundle import ServedBundle

__all__ = ["BoxInfer", "infer_task"]


class BoxInfer(CaseInfer):
    def __init__(self, served: ServedBundle):
        super().__init__(served, type="deepgrow", labels=[], dimension=3,
                         description="SAM-UNet: draw a box (request value 'box') or click inside / outside an object, slice by slice")

    def case_fields(self, request: Mapping[str, Any]) -> dict[str, Any]:
        name = request_values.text(request, "label", "object")
        obj: dict[str, Any] = {"name": name}
        boxes = request_values.voxels({"box": [request["box"]]} if "box" in request else {}, "box", dims=6)
        if boxes:
            obj["box"] = boxes[0]
        if not boxes or any(k in request for k in ("points", "foreground", "background")):
            clicks = request_values.clicks(request)
            obj.update(points=[list(p) for p, _ in clicks], point_labels=[int(positive) for _, positive in clicks])
        return {"objects": [obj]}


def infer_task(served: ServedBundle, conf: Mapping[str, str]) -> BoxInfer:
    return BoxInfer(served)
