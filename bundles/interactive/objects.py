"""Prompted objects: the one reader of clicks and boxes, checked against the image before any model loads.

A case gives either one object (its top-level fields)::

    {'image': 'ct.nii.gz', 'points': [[x, y, z], ...], 'point_labels': [1, 0, ...], 'name': 'liver'}

or several::

    {'image': 'ct.nii.gz', 'objects': [{'name': 'liver', 'points': [...], 'point_labels': [...]},
                                       {'name': 'lesion', 'box': [i0, j0, k0, i1, j1, k1]}, ...]}

Points are voxel indices of the ORIGINAL image along its three axes (as MONAI's VISTA3D bundle takes
them), or RAS world millimetres with ``'points_space': 'world'``. Labels: 1 = inside the object
(foreground), 0 = outside. Boxes (for models that take them) are two inclusive corners, min then max, in
the same space; a world box becomes the voxel box around its eight corners. On a 2D image (one slice)
voxel points may be ``[i, j]`` and voxel boxes ``[i0, j0, i1, j1]``. A point or box corner is inside the
image when it lies within half a voxel of its first and last voxel centres.

The MONAI Label request reader (:mod:`bundles.serving.request_values`) hands its clicks here as one object.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bundles.errors import PromptError
from bundles.io.grid import ImageGrid

__all__ = ["SPACES", "PromptedObject", "read_objects"]

#: How points and boxes may be given: voxel indices of the image, or RAS world millimetres.
SPACES = ("voxel", "world")


@dataclass(frozen=True)
class PromptedObject:
    """One object's prompts on the input image: ``points`` (N, 3) voxel coordinates, ``labels`` N of 0/1 (in the
    order given), ``box`` (2, 3) inclusive min and max voxel corners or None."""

    name: str
    points: np.ndarray
    labels: tuple[int, ...]
    box: np.ndarray | None = None


def _inside(voxels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(N, 3) voxel coordinates -> (N,) whether each lies within half a voxel of the image."""
    return np.all(voxels >= -0.5, axis=1) & np.all(voxels <= np.asarray(shape) - 0.5, axis=1)


def _to_voxels(coords: np.ndarray, space: str, grid: ImageGrid) -> np.ndarray:
    """(N, 3) coordinates in ``space`` -> (N, 3) voxel coordinates of ``grid``."""
    if space == "voxel":
        return coords
    return (np.linalg.inv(grid.affine) @ np.c_[coords, np.ones(len(coords))].T).T[:, :3]


def _unit(space: str, voxels: np.ndarray) -> str:
    return "voxel indices" if space == "voxel" else f"RAS mm, voxel {tuple(np.round(voxels, 1))}"


def _clicks(where: str, points: Any, labels: Any, space: str, grid: ImageGrid) -> tuple[np.ndarray, tuple[int, ...]]:
    """Checked points (N, 3) voxel coordinates and their labels."""
    flat = grid.shape[2] == 1 and space == "voxel"
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        pts = np.empty((0,))
    if pts.ndim != 2 or pts.shape[1] not in ((2, 3) if flat else (3,)) or not np.all(np.isfinite(pts)):
        raise PromptError(f"{where}: points must be a list of {'[x, y] or ' if flat else ''}[x, y, z] numbers, got {points!r}")
    if pts.shape[1] == 2:
        pts = np.c_[pts, np.zeros(len(pts))]
    if labels is None or not isinstance(labels, (list, tuple)) or len(labels) != len(pts):
        n = "none" if labels is None else (len(labels) if isinstance(labels, (list, tuple)) else repr(labels))
        raise PromptError(f"{where}: {len(pts)} points but {n} point_labels; give one label (1 inside, 0 outside) per point")
    bad = [label for label in labels if label not in (0, 1) or isinstance(label, bool)]
    if bad:
        raise PromptError(f"{where}: point_labels must be 1 (inside) or 0 (outside), got {bad[0]!r}")
    voxels = _to_voxels(pts, space, grid)
    for i, (given, v) in enumerate(zip(points, voxels)):
        if not _inside(v[None], grid.shape)[0]:
            raise PromptError(f"{where}: click {i + 1} {list(given)} ({_unit(space, v)}) is outside the image of shape {grid.shape}")
    return voxels, tuple(int(label) for label in labels)


def _box(where: str, box: Any, space: str, grid: ImageGrid) -> np.ndarray:
    """A checked box: (2, 3) min and max voxel corners."""
    flat = grid.shape[2] == 1 and space == "voxel"
    try:
        values = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.empty((0,))
    if values.size not in ((4, 6) if flat else (6,)) or not np.all(np.isfinite(values)):
        given = ("2D voxel indices" if flat else "3D voxel indices") if space == "voxel" else "RAS mm"
        raise PromptError(f"{where}: box must be {4 if flat else 6} numbers ({given}), got {box!r}")
    corners = values.reshape(2, -1)
    if np.any(corners[0] > corners[1]):
        raise PromptError(f"{where}: box {box} has a first corner beyond its second; give [min corner, max corner]")
    if corners.shape[1] == 2:
        corners = np.c_[corners, np.zeros(2)]
    if space == "world":
        every = np.array(list(itertools.product(*corners.T)))  # the world box's 8 corners
        voxels = _to_voxels(every, space, grid)
        corners = np.stack([voxels.min(0), voxels.max(0)])
    if not np.all(_inside(corners, grid.shape)):
        raise PromptError(f"{where}: box {box} is outside the image of shape {grid.shape} ({_unit(space, corners)})")
    return corners


def _object(image: str, raw: Any, index: int, space: str, grid: ImageGrid, boxes: bool, model: str) -> PromptedObject:
    where = f"{image}: object {index + 1}"
    shape = "{'name': ..., 'points': [[x, y, z], ...], 'point_labels': [1, ...]}" + (" or {'name': ..., 'box': [...]}" if boxes else "")
    if not isinstance(raw, dict):
        raise PromptError(f"{where}: expected {shape}, got {raw!r}")
    name = str(raw.get("name") or f"object {index + 1}")
    where = f"{image}: {name!r}"
    box, points = raw.get("box") if boxes else None, raw.get("points")
    if box is None and not points:
        if boxes:
            raise PromptError(f"{where}: no prompt; {model} needs a 'box' or 'points' with 'point_labels' for every object")
        raise PromptError(f"{where}: no clicks; pass 'points': [[x, y, z], ...] and 'point_labels': [1, ...]")
    corners = None if box is None else _box(where, box, space, grid)
    voxels, labels = _clicks(where, points, raw.get("point_labels"), space, grid) if points else (np.empty((0, 3)), ())
    return PromptedObject(name, voxels, labels, corners)


def read_objects(fields: Mapping[str, Any], image: str, grid: ImageGrid, *, boxes: bool = False, model: str = "the model") -> tuple[PromptedObject, ...]:
    """A case's objects (see the module doc), in the order given.

    Args:
        fields: the case's fields: ``objects``, or the one object's ``name``, ``points``, ``point_labels`` (and
            ``box``); ``points_space``.
        image: the image's path, named in every error.
        grid: the image's grid (its shape bounds the prompts; its affine maps world points to voxels).
        boxes: whether objects may give a ``box`` (else a box is not read and every object needs clicks).
        model: the model named when an object has neither box nor clicks.

    Raises:
        PromptError: an unknown ``points_space``, no objects, an object without prompts, malformed points or
            boxes, labels other than 0/1, points and labels of different lengths, a box whose first corner
            is beyond its second, a click or box outside the image, duplicate object names.
    """
    space = str(fields.get("points_space", "voxel"))
    if space not in SPACES:
        raise PromptError(f"{image}: points_space must be 'voxel' (image indices) or 'world' (RAS mm), got {space!r}")
    keys = ("name", "points", "point_labels", "box") if boxes else ("name", "points", "point_labels")
    raws = fields.get("objects")
    if raws is None:
        raws = [{key: fields.get(key) for key in keys}]
    if not isinstance(raws, list) or not raws:
        raise PromptError(f"{image}: 'objects' must be a non-empty list of {{{', '.join(map(repr, keys))}}}")
    objects = tuple(_object(image, raw, i, space, grid, boxes, model) for i, raw in enumerate(raws))
    names = [o.name for o in objects]
    if len(set(names)) != len(names):
        raise PromptError(f"{image}: object names must differ, got {names}")
    return objects
