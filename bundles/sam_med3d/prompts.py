"""SAM-Med3D's prompts: clicks per object, checked against the image before any model loads.

A case gives either one object::

    {'image': 'ct.nii.gz', 'points': [[x, y, z], ...], 'point_labels': [1, 0, ...], 'name': 'liver'}

or several::

    {'image': 'ct.nii.gz', 'objects': [{'name': 'liver', 'points': [...], 'point_labels': [...]}, ...]}

Points are voxel indices of the ORIGINAL image along its three axes (as MONAI's VISTA3D bundle takes
them), or RAS world millimetres with ``'points_space': 'world'``. Labels: 1 = inside the object
(foreground), 0 = outside. Clicks are used in the order given, one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bundles.errors import PromptError
from bundles.io.cases import Case
from bundles.io.modality import normalize_modality
from bundles.io.readers import read_image

__all__ = ["ClickObject", "ClickPrompts", "ClickPromptCheck"]

SPACES = ("voxel", "world")


@dataclass(frozen=True)
class ClickObject:
    """One object's clicks: ``points`` (N, 3) voxel indices of the input image, ``labels`` N of 0/1."""

    name: str
    points: np.ndarray
    labels: tuple[int, ...]


@dataclass(frozen=True)
class ClickPrompts:
    """A case's checked objects, in the order given, and its canonical modality (None when not given)."""

    objects: tuple[ClickObject, ...]
    modality: str | None = None


def _object(image: str, raw: Any, index: int, space: str, affine: np.ndarray, shape: tuple[int, ...]) -> ClickObject:
    where = f"{image}: object {index + 1}"
    if not isinstance(raw, dict):
        raise PromptError(f"{where}: expected {{'name': ..., 'points': [[x, y, z], ...], 'point_labels': [1, ...]}}, got {raw!r}")
    name = str(raw.get("name") or f"object {index + 1}")
    where = f"{image}: {name!r}"
    points, labels = raw.get("points"), raw.get("point_labels")
    if not points:
        raise PromptError(f"{where}: no clicks; pass 'points': [[x, y, z], ...] and 'point_labels': [1, ...]")
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        pts = np.empty((0,))
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
        raise PromptError(f"{where}: points must be a list of [x, y, z] numbers, got {points!r}")
    if labels is None or not isinstance(labels, (list, tuple)) or len(labels) != len(pts):
        n = "none" if labels is None else (len(labels) if isinstance(labels, (list, tuple)) else repr(labels))
        raise PromptError(f"{where}: {len(pts)} points but {n} point_labels; give one label (1 inside, 0 outside) per point")
    bad = [label for label in labels if label not in (0, 1) or isinstance(label, bool)]
    if bad:
        raise PromptError(f"{where}: point_labels must be 1 (inside) or 0 (outside), got {bad[0]!r}")
    voxels = pts if space == "voxel" else (np.linalg.inv(affine) @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]
    for i, (given, v) in enumerate(zip(points, voxels)):
        if np.any(v < -0.5) or np.any(v > np.asarray(shape) - 0.5):
            unit = "voxel indices" if space == "voxel" else f"RAS mm, voxel {tuple(np.round(v, 1))}"
            raise PromptError(f"{where}: click {i + 1} {list(given)} ({unit}) is outside the image of shape {tuple(shape)}")
    return ClickObject(name, voxels, tuple(int(label) for label in labels))


class ClickPromptCheck:
    """The :class:`bundles.engines.segmentation_job.PromptCheck` of SAM-Med3D.

    Reads each image's grid to check the clicks fall inside it (and to map world points to voxels).

    Raises (from ``__call__``):
        PromptError: no clicks, malformed points, labels other than 0/1, points and labels of different
            lengths, a click outside the image, an unknown ``points_space`` or modality, duplicate object names.
    """

    def __call__(self, case: Case) -> ClickPrompts:
        fields = case.fields
        modality = normalize_modality(case.modality) if case.modality else None
        space = str(fields.get("points_space", "voxel"))
        if space not in SPACES:
            raise PromptError(f"{case.image}: points_space must be 'voxel' (image indices) or 'world' (RAS mm), got {space!r}")
        raws = fields.get("objects")
        if raws is None:
            raws = [{"name": fields.get("name"), "points": fields.get("points"), "point_labels": fields.get("point_labels")}]
        if not isinstance(raws, list) or not raws:
            raise PromptError(f"{case.image}: 'objects' must be a non-empty list of {{'name', 'points', 'point_labels'}}")
        _, grid = read_image(case.image, frame=case.frame)
        objects = tuple(_object(str(case.image), raw, i, space, grid.affine, grid.shape) for i, raw in enumerate(raws))
        names = [o.name for o in objects]
        if len(set(names)) != len(names):
            raise PromptError(f"{case.image}: object names must differ, got {names}")
        return ClickPrompts(objects, modality)

    def report_columns(self, name: str, prompts: ClickPrompts) -> dict[str, Any]:
        """The number of clicks the object got."""
        return {"clicks": next((len(o.labels) for o in prompts.objects if o.name == name), 0)}
