"""Reading the values of a MONAI Label request as data: strings, integer voxel indices, 0/1 labels.

What the clients send (MONAI Label 0.8.5 plugins): 3D Slicer sends ``foreground`` / ``background`` lists of
voxel indices ``[[i, j, k], ...]`` of the original image and ``label`` (the segment's name); OHIF v3 sends
``points`` with ``point_labels`` (1 foreground, 0 background) and ``label_prompt`` (indices into the
model's ``labels``). Anything else in a value (an object, a ``$`` expression, a float where an index is
due) is refused with :class:`bundles.errors.PromptError` naming the request key; the server answers 422.
Clicks and boxes become one object's fields (:func:`prompt_object`), checked against the image by the one
reader of prompted objects, :func:`bundles.interactive.objects.read_objects`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bundles.errors import PromptError

__all__ = ["strings", "text", "voxels", "point_labels", "indices", "prompt_object"]


def _listed(request: Mapping[str, Any], key: str) -> list[Any]:
    value = request.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PromptError(f"request value {key!r} must be a list, got {type(value).__name__} {str(value)[:80]!r}")
    return value


def strings(request: Mapping[str, Any], key: str) -> list[str]:
    """``request[key]`` as a list of strings (a single string is a list of one; absent: ``[]``)."""
    value = request.get(key)
    values = [value] if isinstance(value, str) else _listed(request, key)
    if not all(isinstance(v, str) for v in values):
        raise PromptError(f"request value {key!r} must hold text only, got {str(value)[:80]!r}")
    return values


def text(request: Mapping[str, Any], key: str, default: str) -> str:
    """The first string of ``request[key]`` (see :func:`strings`), or ``default`` when absent or empty."""
    return (strings(request, key) or [default])[0]


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def voxels(request: Mapping[str, Any], key: str, dims: int = 3) -> list[list[int]]:
    """``request[key]`` as voxel indices ``[[i, j, k], ...]`` (``dims`` integers each; absent: ``[]``)."""
    values = _listed(request, key)
    for v in values:
        if not (isinstance(v, list) and len(v) == dims and all(_integer(c) for c in v)):
            raise PromptError(f"request value {key!r} must be a list of voxel indices, {dims} integers each, got {str(v)[:80]!r}")
    return [list(v) for v in values]


def point_labels(request: Mapping[str, Any], key: str = "point_labels") -> list[int]:
    """``request[key]`` as click labels, each 1 (foreground) or 0 (background)."""
    values = _listed(request, key)
    if not all(_integer(v) and v in (0, 1) for v in values):
        raise PromptError(f"request value {key!r} must hold 1 (foreground) or 0 (background) per point, got {str(values)[:80]!r}")
    return list(values)


def indices(request: Mapping[str, Any], key: str) -> list[int]:
    """``request[key]`` as a list of integers (a single integer is a list of one)."""
    value = request.get(key)
    values = [value] if _integer(value) else _listed(request, key)
    if not all(_integer(v) for v in values):
        raise PromptError(f"request value {key!r} must hold integer indices, got {str(value)[:80]!r}")
    return list(values)


def prompt_object(request: Mapping[str, Any], box: bool = False) -> dict[str, Any]:
    """The request's one object as the fields :func:`bundles.interactive.objects.read_objects` checks:
    ``{'name': label, 'points': [...], 'point_labels': [...]}`` (OHIF's ``points`` with their
    ``point_labels``, then Slicer's ``foreground`` (1) and ``background`` (0)), with ``'box'`` (six voxel
    indices) when ``box`` and the request has one.

    Raises:
        PromptError: malformed voxel indices or labels, or no clicks (and, with ``box``, no box either).
    """
    points, labels = voxels(request, "points"), point_labels(request)
    foreground, background = voxels(request, "foreground"), voxels(request, "background")
    fields: dict[str, Any] = {"name": text(request, "label", "object"), "points": points + foreground + background,
                              "point_labels": labels + [1] * len(foreground) + [0] * len(background)}
    boxes = voxels({"box": [request["box"]]}, "box", dims=6) if box and "box" in request else []
    if boxes:
        fields["box"] = boxes[0]
    elif not fields["points"]:
        raise PromptError("no clicks: send 'foreground' / 'background' voxel lists [[i, j, k], ...] or 'points' with 'point_labels'")
    return fields
