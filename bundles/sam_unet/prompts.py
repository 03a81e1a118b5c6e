"""SAM-UNet's prompts: one box and/or points per object, checked against the image before any model loads.

A case gives its objects::

    {'image': 'ct.nii.gz', 'objects': [{'name': 'liver', 'box': [i0, j0, k0, i1, j1, k1]},
                                       {'name': 'lesion', 'points': [[i, j, k]], 'point_labels': [1]}]}

(or ``'objects': 'prompts.json'``, a file holding that list), or takes its boxes from its reference mask::

    {'image': 'ct.nii.gz', 'mask': 'labels.nii.gz', 'legend': {'1': 'liver'}, 'boxes_from_mask': true}

Coordinates are voxel indices of the input image along its own axes (inclusive box corners). SAM-UNet is a
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

import numpy as np

from bundles.errors import PromptError
from bundles.io.cases import Case
from bundles.io.readers import read_image

__all__ = ["BoxObject", "BoxPrompts", "BoxPromptCheck"]


@dataclass(frozen=True)
class BoxObject:
    """One object: ``box`` (2, 3) inclusive voxel corners or None; ``points`` (N, 3) voxel indices; ``labels`` N of 0/1."""

    name: str
    box: np.ndarray | None
    points: np.ndarray
    labels: tuple[int, ...]


@dataclass(frozen=True)
class BoxPrompts:
    """A case's checked objects; or ``from_mask``: objects from the reference mask's legend, in legend order."""

    objects: tuple[BoxObject, ...] = ()
    from_mask: bool = False


def _coords(raw: Any, two_d: bool, count: int, what: str, where: str) -> np.ndarray:
    try:
        values = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.empty((0,))
    dims = 2 if two_d else 3
    ok = values.size == count * dims or (two_d and values.size == count * 3)
    if not ok or not np.all(np.isfinite(values)):
        raise PromptError(f"{where}: {what} must be {count * dims} numbers ({'2D' if two_d else '3D'} voxel indices), got {raw!r}")
    values = values.reshape(-1, values.size // count)
    return np.c_[values, np.zeros(len(values))] if values.shape[1] == 2 else values


def _object(image: str, raw: Any, index: int, shape: tuple[int, ...]) -> BoxObject:
    where = f"{image}: object {index + 1}"
    if not isinstance(raw, dict):
        raise PromptError(f"{where}: expected {{'name': ..., 'box': [...]}} or points, got {raw!r}")
    name = str(raw.get("name") or f"object {index + 1}")
    where = f"{image}: {name!r}"
    two_d = shape[2] == 1
    box, points, labels = raw.get("box"), raw.get("points"), raw.get("point_labels")
    if box is None and not points:
        raise PromptError(f"{where}: no prompt; SAM-UNet needs a 'box' or 'points' with 'point_labels' for every object")
    corners = None
    if box is not None:
        corners = _coords(box, two_d, 2, "box", where)
        if np.any(corners[0] > corners[1]):
            raise PromptError(f"{where}: box {box} has a first corner beyond its second; give [min corner, max corner]")
        if np.any(corners < 0) or np.any(corners > np.asarray(shape) - 1):
            raise PromptError(f"{where}: box {box} is outside the image of shape {tuple(shape)} (voxel indices 0..shape-1)")
    pts = np.empty((0, 3))
    if points:
        pts = _coords(points, two_d, len(points), "points", where)
        if labels is None or not isinstance(labels, (list, tuple)) or len(labels) != len(pts):
            raise PromptError(f"{where}: {len(pts)} points need as many point_labels (1 inside, 0 outside)")
        if any(label not in (0, 1) or isinstance(label, bool) for label in labels):
            raise PromptError(f"{where}: point_labels must be 1 (inside) or 0 (outside), got {labels}")
        outside = [list(p) for p in pts if np.any(p < -0.5) or np.any(p > np.asarray(shape) - 0.5)]
        if outside:
            raise PromptError(f"{where}: point {outside[0]} is outside the image of shape {tuple(shape)}")
    return BoxObject(name, corners, pts, tuple(int(v) for v in labels or ()))


class BoxPromptCheck:
    """The :class:`bundles.engines.segmentation_job.PromptCheck` of SAM-UNet (reads each image's grid).

    Raises (from ``__call__``):
        PromptError: no objects, an object without a box or points, malformed or reversed boxes, a box or
            point outside the image, labels other than 0/1, duplicate names, ``boxes_from_mask`` without
            ``mask`` and ``legend``, an unreadable prompts file.
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
        objects = tuple(_object(str(case.image), raw, i, grid.shape) for i, raw in enumerate(raws))
        names = [o.name for o in objects]
        if len(set(names)) != len(names):
            raise PromptError(f"{case.image}: object names must differ, got {names}")
        return BoxPrompts(objects)

    def report_columns(self, name: str, prompts: BoxPrompts) -> dict[str, Any]:
        return {}
