"""SAM-UNet's prompts: one box and/or points per object, checked against the image before any model loads.

A case gives its objects::

    {'image': 'ct.nii.gz', 'objects': [{'name': 'liver', 'box': [i0, j0, k0, i1, j1, k1]},
                                       {'name': 'lesion', 'points': [[i, j, k]], 'point_labels': [1]}]}

(or ``'objects': 'prompts.json'``, a file holding that list), or takes its boxes from its reference mask::

    {'image': 'ct.nii.gz', 'mask': 'labels.nii.gz', 'legend': {'1': 'liver'}, 'boxes_from_mask': true}

Coordinates are voxel indices of the input image along its own axes (inclusive box corners), or RAS mm with
``'points_space': 'world'`` (:mod:`bundles.interactive.objects`, the reader of every click model). SAM-UNet is a
2D model: a 3D box prompts every axial slice it crosses with its in-plane extent; points prompt only their
own slice. On a 2D image, boxes are [i0, j0, i1, j1] and points [i, j]. With ``boxes_from_mask`` each legend
entry is an object, prompted on every slice where it appears by the box of its largest component there
(SAM-UNet's evaluation protocol).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bundles.errors import PromptError
from bundles.interactive.objects import PromptedObject, read_objects
from bundles.io.cases import Case
from bundles.io.readers import read_image

__all__ = ["BoxPrompts", "BoxPromptCheck"]


@dataclass(frozen=True)
class BoxPrompts:
    """A case's checked objects (each a box and/or points); or ``from_mask``: objects from the reference mask's
    legend, in legend order."""

    objects: tuple[PromptedObject, ...] = ()
    from_mask: bool = False


class BoxPromptCheck:
    """The :class:`bundles.engines.segmentation_job.PromptCheck` of SAM-UNet (reads each image's grid).

    Raises (from ``__call__``):
        PromptError: no objects, ``boxes_from_mask`` without ``mask`` and ``legend``, an unreadable prompts
            file, or what :func:`~bundles.interactive.objects.read_objects` refuses (an object without a box
            or points, malformed or reversed boxes, a box or point outside the image, labels other than 0/1,
            duplicate names).
    """

    def __call__(self, case: Case) -> BoxPrompts:
        fields = case.fields
        if fields.get("boxes_from_mask"):
            if case.mask is None or not case.legend:
                raise PromptError(f"{case.image}: boxes_from_mask needs the case's 'mask' and 'legend'")
            return BoxPrompts(from_mask=True)
        raws = fields.get("objects")
        if isinstance(raws, str):
            path = Path(raws)
            try:
                raws = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise PromptError(f"{path}: cannot read the prompts file ({e})") from e
        if not isinstance(raws, list) or not raws:
            given = f" (it got 'prompts': {case.prompts!r}, which SAM-UNet does not read)" if case.prompts is not None else ""
            raise PromptError(
                f"{case.image}: SAM-UNet needs prompts{given}: 'objects': [{{'name', 'box': [i0, j0, k0, i1, j1, k1]}}, ...] "
                "(or a JSON file of that list), or 'boxes_from_mask': true with the case's mask and legend"
            )
        _, grid = read_image(case.image, frame=case.frame, allow_2d=True)
        return BoxPrompts(read_objects({**fields, "objects": raws}, str(case.image), grid, boxes=True, model="SAM-UNet"))

    def report_columns(self, name: str, prompts: BoxPrompts) -> dict[str, Any]:
        return {}
