"""The whole-image inferer puts masks back on the input grid: an oracle network that segments "bright"
voxels must return a known cube at its world position, for LPS, anisotropic, rotated and offset grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from bundles.io.grid import ImageGrid
from bundles.metrics.segmentation import dice
from bundles.sat.inferer import TextPromptedInferer


class BrightVoxels(torch.nn.Module):
    """Contract-conforming stand-in: every query's logits are large where the normalised image is high."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(20.0))

    def forward(self, image: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        assert image.ndim == 5 and image.shape[1] == 1 and queries.shape[0] == image.shape[0]
        return (self.scale * (image - 1.0)).expand(-1, queries.shape[1], -1, -1, -1)


def _body_in_air(shape: tuple[int, int, int], body: tuple[slice, ...], bright: tuple[slice, ...]) -> tuple[MetaTensor, ImageGrid]:
    """A CT of air (-1000 HU) holding a soft-tissue ``body`` box (40 HU) with a ``bright`` box (900 HU), 1 x 1 x 2 mm."""
    volume = np.full(shape, -1000.0, dtype=np.float32)
    volume[body] = 40.0
    volume[bright] = 900.0
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    return MetaTensor(torch.from_numpy(volume)[None], affine=torch.from_numpy(affine)), ImageGrid(shape, affine, source="body in air")


def _rotation_z(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


#: name -> (3x3 direction-times-spacing, origin, model spacing of the inferer)
GRIDS = {
    "RAS iso": (np.diag([1.0, 1.0, 1.0]), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "LPS aniso": (np.diag([-0.789062, -0.789062, 2.5]), (120.3, 80.7, -400.2), (1.5, 1.5, 3.0)),
    "rotated": (_rotation_z(20) @ np.diag([0.9, 1.1, 3.0]), (-30.0, 12.5, 55.0), (1.5, 1.5, 3.0)),
}


@pytest.mark.parametrize("name", list(GRIDS))
def test_bright_cube_comes_back_at_its_world_position(name):
    linear, origin, spacing = GRIDS[name]
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    shape = (70, 60, 24)
    volume = np.full(shape, -1000.0, dtype=np.float32)
    body = (slice(5, 65), slice(5, 55), slice(1, 23))
    volume[body] = 40.0
    cube = np.zeros(shape, dtype=bool)
    cube[20:40, 15:35, 6:16] = True
    volume[cube] = 900.0
    image = MetaTensor(torch.from_numpy(volume)[None], affine=torch.from_numpy(affine))
    grid = ImageGrid(shape, affine, source=f"synthetic {name}")

    inferer = TextPromptedInferer(BrightVoxels(), roi_size=(32, 32, 32), spacing=spacing, device="cpu", amp=False, progress=False)
    masks = inferer(image, grid, torch.zeros(2, 768), "ct")

    assert masks.shape == (2, *shape) and masks.dtype == bool
    assert dice(masks[0], cube) > 0.9
    np.testing.assert_allclose(np.argwhere(masks[0]).mean(0), np.argwhere(cube).mean(0), atol=0.75)
    assert np.array_equal(masks[0], masks[1])


def test_preprocessing_normalises_the_cropped_foreground_like_sat():
    shape = (40, 40, 12)
    volume = np.full(shape, -1000.0, dtype=np.float32)
    volume[10:30, 10:30, 2:10] = np.linspace(-200, 1500, 20 * 20 * 8).reshape(20, 20, 8)
    image = MetaTensor(torch.from_numpy(volume)[None], affine=torch.eye(4, dtype=torch.float64))
    inferer = TextPromptedInferer(BrightVoxels(), roi_size=(32, 32, 32), spacing=(1.0, 1.0, 1.0), device="cpu", amp=False, progress=False)
    pre, _ = inferer.preprocessing(image, "ct")
    # cropped to the bounding box of voxels > 0 HU, clipped to [-500, 1000] and z-scored (official SAT inference.py)
    positive = np.argwhere(volume > 0)
    assert tuple(pre.shape[1:]) == tuple(positive.max(0) - positive.min(0) + 1)
    assert abs(pre.mean().item()) < 1e-4 and abs(pre.std(unbiased=False).item() - 1) < 1e-3
    np.testing.assert_allclose(pre.affine[:3, 3].numpy(), positive.min(0), atol=1e-6)


def test_keep_largest_component_drops_the_smaller_blob():
    shape = (48, 48, 16)
    volume = np.full(shape, -1000.0, dtype=np.float32)
    volume[2:46, 2:46, 1:15] = 40.0
    volume[5:20, 5:20, 3:12] = 900.0  # big blob
    volume[30:34, 30:34, 6:9] = 900.0  # small blob
    image = MetaTensor(torch.from_numpy(volume)[None], affine=torch.eye(4, dtype=torch.float64))
    grid = ImageGrid(shape, np.eye(4), source="two blobs")
    kwargs = dict(roi_size=(32, 32, 32), spacing=(1.0, 1.0, 1.0), device="cpu", amp=False, progress=False)
    both = TextPromptedInferer(BrightVoxels(), **kwargs)(image, grid, torch.zeros(1, 768), "ct")[0]
    largest = TextPromptedInferer(BrightVoxels(), keep_largest_component=True, **kwargs)(image, grid, torch.zeros(1, 768), "ct")[0]
    assert both[32, 32, 7] and both[10, 10, 7]
    assert largest[10, 10, 7] and not largest[32, 32, 7]
    assert largest.sum() < both.sum()


def test_windows_of_air_only_are_skipped_and_the_masks_stay_the_same():
    """A small body in a large field of air (no foreground crop): windows holding only air (< -500 HU) are
    not run, and the masks equal those of running every window."""
    image, grid = _body_in_air((96, 96, 40), (slice(4, 30), slice(6, 34), slice(2, 18)), (slice(10, 20), slice(12, 24), slice(6, 12)))
    kwargs = dict(roi_size=(32, 32, 32), spacing=(1.0, 1.0, 2.0), crop_foreground=False, device="cpu", amp=False, progress=False)
    every, skipping = (TextPromptedInferer(BrightVoxels(), skip_air_windows=flag, **kwargs) for flag in (False, True))
    all_windows = every(image, grid, torch.zeros(2, 768), "ct")
    fewer = skipping(image, grid, torch.zeros(2, 768), "ct")

    assert every.windows_skipped == 0 and skipping.windows_skipped > skipping.windows_run > 0
    assert skipping.windows_run + skipping.windows_skipped == every.windows_run
    assert all_windows[0].any() and np.array_equal(all_windows, fewer)


@pytest.mark.parametrize("slab_voxels", [2**24, 1])
def test_masks_resampled_only_where_they_can_exceed_the_threshold_are_those_of_the_whole_volume(monkeypatch, slab_voxels):
    """``MasksOnGrid`` resamples each class only around its source voxels above the threshold, in slabs: the
    masks equal thresholding the whole volume resampled onto the whole grid (random noise, sparse blobs, an
    empty class; an oblique source onto an LPS grid)."""
    from bundles.inferers import on_grid
    from bundles.io.resample import resample_to_grid

    rng = np.random.default_rng(0)
    probabilities = np.zeros((4, 20, 18, 10), dtype=np.float32)
    probabilities[0] = rng.random((20, 18, 10))
    probabilities[1, 8:12, 2:7, 4:8] = rng.random((4, 5, 4)) * 0.6 + 0.4  # a blob
    probabilities[2, 12, 4, 8] = 0.9  # one voxel
    probabilities = torch.from_numpy(probabilities)  # class 3 stays empty
    source = np.eye(4)
    source[:3, :3] = _rotation_z(15) @ np.diag([1.5, 1.5, 3.0])
    grid = ImageGrid((40, 36, 25), np.diag([-0.8, -0.8, 1.25, 1.0]) + np.array([[0, 0, 0, 20.0], [0, 0, 0, 14.0], [0] * 4, [0] * 4]),
                     source="LPS target")
    monkeypatch.setattr(on_grid, "RESAMPLE_VOXELS", slab_voxels)
    masks = on_grid.MasksOnGrid(threshold=0.5)(probabilities, source, grid)
    whole = resample_to_grid(probabilities, source, grid, mode="bilinear").numpy() > 0.5
    assert all(masks[k].any() for k in range(3)) and not masks[3].any()
    assert np.array_equal(masks, whole)


def test_fit_tiling_covers_the_crop_with_fewer_larger_windows_divisible_by_the_unet():
    from bundles.errors import ConfigurationError
    from bundles.sat.tiling import tiling_for

    assert tiling_for("standard", (329, 312, 100), (288, 288, 96), 32) == ((288, 288, 96), 0.5)
    assert tiling_for("fit", (329, 312, 100), (288, 288, 96), 32) == ((352, 320, 128), 0.0)  # the benchmark CT: 1 window, not 8
    assert tiling_for("fit", (329, 312, 340), (288, 288, 96), 32) == ((352, 320, 128), 0.0)  # a long scan: 3 slabs of 128
    assert tiling_for("fit", (40, 20, 10), (64, 64, 32), 32) == ((64, 32, 32), 0.0)
    with pytest.raises(ConfigurationError, match="tiling 'tiles' is not one of standard, fit"):
        tiling_for("tiles", (40, 20, 10), (64, 64, 32), 32)


def test_fit_tiling_runs_fewer_windows_and_a_voxelwise_network_gives_the_same_masks():
    image, grid = _body_in_air((70, 60, 40), (slice(4, 66), slice(6, 54), slice(2, 38)), (slice(20, 40), slice(12, 30), slice(10, 30)))
    kwargs = dict(roi_size=(32, 32, 32), spacing=(1.0, 1.0, 2.0), crop_foreground=True, device="cpu", amp=False, progress=False)
    standard, fit = (TextPromptedInferer(BrightVoxels(), tiling=kind, **kwargs) for kind in ("standard", "fit"))
    masks = standard(image, grid, torch.zeros(2, 768), "ct"), fit(image, grid, torch.zeros(2, 768), "ct")
    assert fit.windows_run + fit.windows_skipped < standard.windows_run + standard.windows_skipped
    assert masks[0][0].any() and np.array_equal(*masks)
