"""The Toy3D click session: the whole volume on the input grid, its features computed once per image, each
click decoded with the object's click maps (a :class:`bundles.interactive.session.ClickSession`, so the core's
click predictor, MONAI Label click task and ``bundles.open_session`` run it).

There is no model grid: the network sees the input volume as it is (a toy for small volumes; memory grows
with the volume, C + 2 floats a voxel), and masks come back on the same voxels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bundles.errors import PromptError
from bundles.io.grid import ImageGrid
from bundles.networks.toy3d import Toy3D
from bundles.precision import prepare_for_inference, resolve_device
from bundles.toy3d.inputs import click_maps, network_image

__all__ = ["Toy3DSession"]

Click = tuple[tuple[float, float, float], bool]
"""A click: input-grid voxel coordinates (i, j, k) and whether it is inside the object."""


class Toy3DSession:
    """Interactive 3D click segmentation with :class:`Toy3D` (a :class:`~bundles.interactive.session.ClickSession`).

    Args:
        network: a :class:`Toy3D` with its weights (moved to ``device`` and set to eval mode here).
        device: ``"auto"``, ``"cpu"``, ``"cuda:0"``...
        sigma: width of a click's Gaussian map, in voxels (:func:`bundles.toy3d.inputs.click_maps`).
        threshold: probability above which a voxel is in the mask.

    Attributes:
        encodings: encoder runs since :meth:`set_image` (1 after the first click: later clicks reuse the features).
    """

    def __init__(self, network: Toy3D, *, device: str | torch.device = "auto", sigma: float = 8.0, threshold: float = 0.5) -> None:
        self.device = resolve_device(device)
        self.network = prepare_for_inference(network, self.device)
        self.sigma = sigma
        self.threshold = threshold
        self._grid: ImageGrid | None = None
        self._image: torch.Tensor | None = None  # (1, 1, X, Y, Z) network units
        self._features: torch.Tensor | None = None  # (1, C, X, Y, Z)
        self._clicks: dict[str, list[Click]] = {}
        self._masks: dict[str, list[np.ndarray]] = {}  # the mask after each click of each object
        self.encodings = 0

    def fresh(self) -> Toy3DSession:
        """A new session on the same network (not copied) and settings, with no image: one per server client."""
        return Toy3DSession(self.network, device=self.device, sigma=self.sigma, threshold=self.threshold)

    def set_image(self, image: torch.Tensor | np.ndarray, grid: ImageGrid, modality: str | None = None) -> None:
        """Take ``image`` ((X, Y, Z) or (1, X, Y, Z) on ``grid``, intensities as HU); forget all objects.
        ``modality`` is not used: the toy reads every image in HU units."""
        volume = network_image(image)
        volume = volume[0] if volume.ndim == 4 else volume
        self._image = volume[None, None].to(self.device)
        self._grid = grid
        self._features = None
        self._clicks.clear()
        self._masks.clear()
        self.encodings = 0

    def add_click(self, voxel: Sequence[float], positive: bool = True, obj: str = "object") -> np.ndarray:
        """Add a click at input-grid voxel ``voxel`` (i, j, k) to ``obj``; its mask (X, Y, Z) bool after it.

        Raises:
            PromptError: no image set, or the click is outside the image.
        """
        grid = self.grid
        v = np.asarray(voxel, dtype=np.float64)
        if v.shape != (3,) or np.any(v < -0.5) or np.any(v > np.asarray(grid.shape) - 0.5):
            raise PromptError(f"{grid.source}: click {tuple(voxel)} is outside the image of shape {grid.shape} (voxel indices i, j, k)")
        clicks = self._clicks.setdefault(obj, [])
        clicks.append((tuple(float(c) for c in v), bool(positive)))
        mask = self._decode(clicks)
        self._masks.setdefault(obj, []).append(mask)
        return mask

    def undo(self, obj: str = "object") -> np.ndarray:
        """Remove the last click of ``obj``; its mask as it was before that click (empty with no click left)."""
        if self._clicks.get(obj):
            self._clicks[obj].pop()
            self._masks[obj].pop()
        return self.mask(obj)

    def reset(self, obj: str | None = None) -> None:
        """Forget the clicks of ``obj`` (of every object when None); the image and its features stay."""
        for store in (self._clicks, self._masks):
            if obj is None:
                store.clear()
            else:
                store.pop(obj, None)

    def mask(self, obj: str = "object") -> np.ndarray:
        """The current mask of ``obj`` on the input grid (X, Y, Z) bool (empty without clicks)."""
        masks = self._masks.get(obj)
        return masks[-1] if masks else np.zeros(self.grid.shape, dtype=bool)

    @property
    def grid(self) -> ImageGrid:
        """The input image's grid (what masks are returned on).

        Raises:
            PromptError: no image set.
        """
        if self._grid is None:
            raise PromptError("no image: call set_image(image, grid) before clicking")
        return self._grid

    @torch.no_grad()
    def _decode(self, clicks: list[Click]) -> np.ndarray:
        """The mask (X, Y, Z) bool of an object with ``clicks``; the features are computed on the first call."""
        assert self._image is not None
        if self._features is None:
            self._features = self.network.encode(self._image)
            self.encodings += 1
        maps = click_maps(self.grid.shape, clicks, self.sigma, self.device)[None]
        logits = self.network.decode(self._features, maps)
        return (torch.sigmoid(logits[0, 0]) > self.threshold).cpu().numpy()
