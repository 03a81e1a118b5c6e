"""Overlay figures: radiological layout independent of file orientation, contours drawn where the masks are."""

from __future__ import annotations

import numpy as np
from matplotlib.image import imread

from bundles.io.grid import ImageGrid
from bundles.visualize.overlay import save_overlay_figure, slice_views

SHAPE = (20, 16, 10)


def _world_scene(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image and mask of one world-space scene sampled on a grid: a bright block on the patient's LEFT,
    ANTERIOR and SUPERIOR side (RAS x < 0, y > 0, z > 0)."""
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1).reshape(-1, 3)
    world = (affine[:3, :3] @ idx.T).T + affine[:3, 3]
    x, y, z = world.T
    mask = ((x < -3) & (x > -12) & (y > 2) & (y < 9) & (z > 2)).reshape(SHAPE)
    image = np.where(mask, 200.0, -50.0) + 0.01 * (x + y + z).reshape(SHAPE)
    return image, mask


def _grids() -> list[ImageGrid]:
    ras = np.diag([1.0, 1.0, 2.0, 1.0])
    ras[:3, 3] = [-9.5, -7.5, -9.0]
    lps = np.diag([-1.0, -1.0, 2.0, 1.0])
    lps[:3, 3] = [9.5, 7.5, -9.0]
    return [ImageGrid(SHAPE, ras, "ras.nii.gz"), ImageGrid(SHAPE, lps, "lps.nii.gz")]


def test_views_are_radiological_and_independent_of_file_orientation():
    views = []
    for grid in _grids():
        image, mask = _world_scene(grid.affine)
        views.append(slice_views(image, grid, mask[None]))
    ras_view, lps_view = views
    np.testing.assert_array_equal(ras_view.pred_axial, lps_view.pred_axial)
    np.testing.assert_array_equal(ras_view.pred_coronal, lps_view.pred_coronal)
    np.testing.assert_allclose(ras_view.axial, lps_view.axial)
    rows, cols = np.nonzero(ras_view.pred_axial[0])
    height, width = ras_view.pred_axial[0].shape
    assert cols.min() >= width // 2  # patient's left on the viewer's right
    assert rows.max() < height // 2  # anterior at the top
    rows, cols = np.nonzero(ras_view.pred_coronal[0])
    assert cols.min() >= width // 2 and rows.max() < ras_view.pred_coronal[0].shape[0] // 2  # superior at the top
    assert ras_view.coronal_aspect == 2.0 and ras_view.axial_aspect == 1.0


def test_figure_is_a_png_with_contours_where_the_mask_is(tmp_path):
    grid = _grids()[1]
    image, mask = _world_scene(grid.affine)
    with_mask = save_overlay_figure(image, grid, mask[None], mask[None], ["liver"], tmp_path / "mask.png")
    empty = save_overlay_figure(image, grid, np.zeros((1, *SHAPE), bool), None, ["liver"], tmp_path / "empty.png")
    assert with_mask.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.png", "mask.png"]  # no temporary files left
    drawn, blank = imread(with_mask)[..., :3], imread(empty)[..., :3]
    assert drawn.shape == blank.shape
    changed = np.any(np.abs(drawn - blank) > 0.2, axis=-1)
    assert changed.sum() > 50
    blue = (drawn[..., 2] > 0.5) & (drawn[..., 0] < 0.4)  # contour colour C0 (blue)
    assert (blue & changed).sum() > 20


def test_an_organ_keeps_its_colour_when_another_is_empty(tmp_path):
    grid = _grids()[1]
    image, mask = _world_scene(grid.affine)
    pred = np.stack([np.zeros(SHAPE, bool), mask])  # 'spleen' empty, 'liver' present
    drawn = imread(save_overlay_figure(image, grid, pred, None, ["spleen", "liver"], tmp_path / "fig.png"))[..., :3]
    orange = (drawn[..., 0] > 0.9) & (drawn[..., 1] > 0.35) & (drawn[..., 1] < 0.65) & (drawn[..., 2] < 0.25)  # C1
    blue = (drawn[..., 2] > 0.5) & (drawn[..., 0] < 0.4)  # C0: neither drawn nor in the legend
    assert orange.sum() > 20 and blue.sum() == 0
