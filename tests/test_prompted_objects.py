"""The one reader of clicks and boxes (``bundles/interactive/objects.py``) on grids alone (no image files): voxel
and world points and boxes land on the same voxels, 2D images take 2D prompts, bad values are one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from bundles.errors import PromptError
from bundles.interactive.objects import read_objects
from bundles.io.grid import ImageGrid

#: An oblique LPS grid: 25 degrees about z, anisotropic voxels.
_ANGLE = np.deg2rad(25)
_AFFINE = np.eye(4)
_AFFINE[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ np.array(
    [[np.cos(_ANGLE), -np.sin(_ANGLE), 0], [np.sin(_ANGLE), np.cos(_ANGLE), 0], [0, 0, 1]]) @ np.diag([1.1, 0.9, 2.5])
_AFFINE[:3, 3] = (30.0, -12.0, 80.0)
GRID = ImageGrid((48, 40, 20), _AFFINE, "toy.nii.gz")
FLAT = ImageGrid((64, 32, 1), np.eye(4), "slice.png")


def _world(voxels) -> list[list[float]]:
    return [(GRID.affine @ np.append(v, 1.0))[:3].tolist() for v in voxels]


def test_world_points_land_on_their_voxels_and_the_shorthand_is_one_object():
    (given,) = read_objects({"points": [[24, 20, 10], [3, 4, 5]], "point_labels": [1, 0], "name": "blob"}, "toy.nii.gz", GRID)
    (world,) = read_objects({"points_space": "world", "objects": [{"name": "blob", "points": _world([[24, 20, 10], [3, 4, 5]]),
                                                                    "point_labels": [1, 0]}]}, "toy.nii.gz", GRID)
    assert given.name == world.name == "blob" and given.labels == world.labels == (1, 0) and given.box is None
    assert np.allclose(given.points, world.points, atol=1e-9)


def test_a_world_box_is_the_voxel_box_around_its_corners():
    corners = np.array(_world([[10, 8, 4], [30, 25, 12]]))
    low, high = corners.min(0), corners.max(0)  # an axis-aligned RAS box around the voxel box's corners
    (obj,) = read_objects({"points_space": "world", "objects": [{"name": "b", "box": [*low, *high]}]}, "toy.nii.gz", GRID, boxes=True)
    assert np.all(obj.box[0] <= [10, 8, 4] + np.array(1e-9)) and np.all(obj.box[1] >= [30, 25, 12] - np.array(1e-9))
    assert obj.points.shape == (0, 3) and obj.labels == ()


def test_a_2d_image_takes_2d_boxes_and_points():
    (obj,) = read_objects({"objects": [{"name": "s", "box": [1, 2, 30, 20], "points": [[5, 6]], "point_labels": [1]}]}, "slice.png", FLAT,
                          boxes=True)
    assert obj.box.tolist() == [[1, 2, 0], [30, 20, 0]] and obj.points.tolist() == [[5, 6, 0]]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"objects": [{"name": "far", "box": [0, 0, 0, 60, 10, 5]}]}, r"'far': box \[0, 0, 0, 60, 10, 5\] is outside the image of shape \(48, 40, 20\)"),
        ({"objects": [{"name": "n"}]}, "'n': no prompt; the model needs a 'box' or 'points'"),
        ({"objects": [{"name": "f", "box": [1, 2, 3]}]}, r"box must be 6 numbers \(3D voxel indices\)"),
        ({"objects": [{"name": "r", "box": [20, 20, 5, 10, 10, 2]}]}, "first corner beyond its second"),
        ({"objects": [{"name": "p", "box": [1, 1, 1, 2, 2, 2], "points": [[1, 2]], "point_labels": [1]}]}, r"points must be a list of \[x, y, z\]"),
        ({"objects": []}, r"'objects' must be a non-empty list of \{'name', 'points', 'point_labels', 'box'\}"),
        ({"objects": ["liver"]}, "object 1: expected"),
        ({"points_space": "ijk", "objects": [{"box": [1, 1, 1, 2, 2, 2]}]}, "points_space must be 'voxel'"),
    ],
)
def test_bad_objects_are_prompt_errors_naming_the_value(fields, message):
    with pytest.raises(PromptError, match=message):
        read_objects(fields, "toy.nii.gz", GRID, boxes=True)


def test_a_box_is_not_read_where_the_model_takes_clicks_only():
    with pytest.raises(PromptError, match="'b': no clicks; pass 'points'"):
        read_objects({"objects": [{"name": "b", "box": [1, 1, 1, 2, 2, 2]}]}, "toy.nii.gz", GRID)
