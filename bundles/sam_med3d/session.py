"""The interactive session of SAM-Med3D: prepare a volume once, then each click costs only the prompt
encoder and the mask decoder on a cached image embedding (segment-anything's ``SamPredictor`` pattern).

``set_image`` resamples the volume to the 1.5 mm RAS model grid once. An object's first click places a
128³ window centred on it; the window's image embedding is computed once and cached (shared by objects
in the same window). Each later click of the object runs only the prompt encoder + mask decoder with that
one click (plus the padding point) and the object's previous low-resolution logits, as the model was
trained and officially evaluated. A click outside the current window moves the window (by a multiple of
4 voxels, so the previous logits shift by whole low-resolution voxels) and encodes the new window.
Every click returns the object's mask on the input's own grid. The session is a
:class:`bundles.interactive.session.ClickSession`: the core's click predictor, MONAI Label click task and
``bundles.open_session`` run it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from bundles.errors import PromptError
from bundles.inferers.on_grid import MasksOnGrid
from bundles.io.grid import ImageGrid, sub_grid_affine
from bundles.networks.sam_med3d import SAMMed3D
from bundles.precision import autocast, prepare_for_inference, resolve_device
from bundles.sam_med3d.preprocessing import (
    SPACING_MM,
    clamp_ct,
    point_window_start,
    to_model_grid,
    znormalize_positive,
)
from bundles.transforms.window_crop import crop_window

__all__ = ["SAMMed3DSession"]


@dataclass
class _Click:
    point: np.ndarray  # model-grid voxel coordinates (3,)
    positive: bool
    start: np.ndarray  # first voxel of the window the click was decoded in (3,)
    low_res: torch.Tensor  # logits after the click (1, 1, L, L, L)


@dataclass
class _Object:
    clicks: list[_Click] = field(default_factory=list)


class SAMMed3DSession:
    """Interactive 3D click segmentation with SAM-Med3D (a :class:`~bundles.interactive.session.ClickSession`).

    Args:
        network: a :class:`SAMMed3D` with its weights (moved to ``device`` and set to eval mode here).
        device: ``"auto"``, ``"cpu"``, ``"cuda:0"``...
        amp: bf16 autocast on the CPU, fp16 on CUDA.
        spacing: model grid spacing in mm (official 1.5).
        keep_largest_component: keep each mask's largest connected component on the input grid.
        cached_windows: how many window embeddings to keep (each 384 x 8³ floats).

    Usage::

        session = SAMMed3DSession(network)
        session.set_image(image, grid, modality="ct")
        liver = session.add_click((210, 180, 40), positive=True, obj="liver")   # (X, Y, Z) bool mask
        liver = session.add_click((230, 150, 44), positive=False, obj="liver")
        liver = session.undo("liver"); session.reset()
    """

    def __init__(
        self,
        network: SAMMed3D,
        *,
        device: str | torch.device = "auto",
        amp: bool = False,
        spacing: float = SPACING_MM,
        keep_largest_component: bool = False,
        cached_windows: int = 4,
    ) -> None:
        self.device = resolve_device(device)
        self.network = prepare_for_inference(network, self.device)
        self.amp = amp
        self.spacing = spacing
        self.keep_largest_component = keep_largest_component
        self.to_grid = MasksOnGrid(threshold=0.5, keep_largest_component=keep_largest_component)
        self.cached_windows = cached_windows
        self.size = network.img_size
        self.factor = network.img_size // network.low_res_size
        self._grid: ImageGrid | None = None
        self._volume: torch.Tensor | None = None
        self._affine: np.ndarray | None = None
        self._embeddings: OrderedDict[tuple[int, int, int], torch.Tensor] = OrderedDict()
        self._objects: dict[str, _Object] = {}
        self.encodings = 0  # image-encoder runs since set_image (what caching saves)

    def fresh(self) -> SAMMed3DSession:
        """A new session on the same network (not copied) and settings, with no image and no clicks: one
        per client of a server."""
        return SAMMed3DSession(self.network, device=self.device, amp=self.amp, spacing=self.spacing,
                               keep_largest_component=self.keep_largest_component, cached_windows=self.cached_windows)

    # -- image ---------------------------------------------------------------------------------------
    def set_image(self, image: torch.Tensor | np.ndarray, grid: ImageGrid, modality: str | None = None) -> None:
        """Prepare ``image`` ((X, Y, Z) or (1, X, Y, Z) on ``grid``) once; forget all objects.

        ``modality="ct"`` clamps to [-1000, 1000] HU as the official training did for CT.
        """
        data = torch.as_tensor(np.asarray(image, dtype=np.float32))
        data = data[None] if data.ndim == 3 else data
        model = to_model_grid(MetaTensor(data, affine=torch.tensor(np.array(grid.affine))), self.spacing)
        volume = model.as_tensor().to(torch.float32)
        self._volume = clamp_ct(volume) if modality == "ct" else volume
        self._affine = np.asarray(model.affine, dtype=np.float64)
        self._grid = grid
        self._embeddings.clear()
        self._objects.clear()
        self.encodings = 0

    @property
    def objects(self) -> list[str]:
        """Names of the objects with at least one click."""
        return [name for name, o in self._objects.items() if o.clicks]

    def to_model(self, voxel: Sequence[float]) -> np.ndarray:
        """Input-grid voxel indices (i, j, k) -> model-grid voxel coordinates (continuous)."""
        grid, affine = self._need_image()
        world = grid.affine @ np.append(np.asarray(voxel, dtype=np.float64), 1.0)
        return (np.linalg.inv(affine) @ world)[:3]

    def window_affine(self, start: np.ndarray) -> np.ndarray:
        """Voxel -> RAS mm affine of the window whose first voxel is ``start`` on the model grid."""
        _, affine = self._need_image()
        return sub_grid_affine(affine, start)

    # -- clicks --------------------------------------------------------------------------------------
    def add_click(self, voxel: Sequence[float], positive: bool = True, obj: str = "object") -> np.ndarray:
        """Add a click at input-grid voxel ``voxel`` (i, j, k) to object ``obj``; its mask (X, Y, Z) bool.

        Raises:
            PromptError: the click is outside the image, or its window holds no intensities above 0.
        """
        grid, _ = self._need_image()
        v = np.asarray(voxel, dtype=np.float64)
        if v.shape != (3,) or np.any(v < -0.5) or np.any(v > np.asarray(grid.shape) - 0.5):
            raise PromptError(f"{grid.source}: click {tuple(voxel)} is outside the image of shape {grid.shape} (voxel indices i, j, k)")
        point = self.to_model(v)
        state = self._objects.setdefault(obj, _Object())
        previous = state.clicks[-1] if state.clicks else None
        start, prev_low = self._window_for(point, previous)
        embedding = self.window_embedding(start, voxel)
        crop_point = torch.as_tensor(point - start, dtype=torch.float32, device=self.device).view(1, 1, 3)
        label = torch.tensor([[1 if positive else 0]], device=self.device)
        with torch.no_grad(), autocast(self.device, self.amp):
            low = self.network.decode(embedding, crop_point, label, prev_low)
        state.clicks.append(_Click(point, bool(positive), start, low.float()))
        return self.mask(obj)

    def undo(self, obj: str = "object") -> np.ndarray:
        """Remove the last click of ``obj``; the mask as it was before it (empty after the first click)."""
        state = self._objects.get(obj)
        if state and state.clicks:
            state.clicks.pop()
        return self.mask(obj)

    def reset(self, obj: str | None = None) -> None:
        """Forget the clicks of ``obj`` (all objects when None); the image and its embeddings stay."""
        if obj is None:
            self._objects.clear()
        else:
            self._objects.pop(obj, None)

    def mask(self, obj: str = "object") -> np.ndarray:
        """The current mask of ``obj`` on the input grid (X, Y, Z) bool (empty without clicks)."""
        grid, _ = self._need_image()
        state = self._objects.get(obj)
        if not state or not state.clicks:
            return np.zeros(grid.shape, dtype=bool)
        last = state.clicks[-1]
        return self.to_grid(self.probabilities(last.low_res), self.window_affine(last.start), grid)[0]

    def probabilities(self, low_res: torch.Tensor) -> torch.Tensor:
        """Low-res logits (1, 1, L, L, L) -> probabilities on the window (1, S, S, S): trilinear
        upsampling with ``align_corners=False`` then sigmoid, as every official pipeline does."""
        up = F.interpolate(low_res.float(), size=(self.size,) * 3, mode="trilinear", align_corners=False)
        return torch.sigmoid(up[0])

    @property
    def grid(self) -> ImageGrid:
        """The input image's grid (what masks are returned on)."""
        return self._need_image()[0]

    @property
    def volume(self) -> torch.Tensor:
        """The image on the model grid (1, x, y, z), CT clamped, not normalised."""
        if self._volume is None:
            raise PromptError("no image: call set_image(image, grid) before clicking")
        return self._volume

    # -- internals -----------------------------------------------------------------------------------
    def _need_image(self) -> tuple[ImageGrid, np.ndarray]:
        if self._grid is None or self._affine is None:
            raise PromptError("no image: call set_image(image, grid) before clicking")
        return self._grid, self._affine

    def _window_for(self, point: np.ndarray, previous: _Click | None) -> tuple[np.ndarray, torch.Tensor | None]:
        """The window for a click at ``point`` and the previous logits in that window (None = zeros)."""
        if previous is None:
            return point_window_start(point, self.size), None
        inside = np.all(point - previous.start >= -0.5) and np.all(point - previous.start <= self.size - 0.5)
        if inside:
            return previous.start, previous.low_res
        cells = np.round((point_window_start(point, self.size) - previous.start) / self.factor).astype(np.int64)
        # the previous logits seen from the moved window: the overlap kept, the rest 0
        return previous.start + cells * self.factor, crop_window(previous.low_res[0], cells, previous.low_res.shape[-1])[None]

    def window_embedding(self, start: np.ndarray, voxel: Sequence[float] | None = None) -> torch.Tensor:
        """The image embedding (1, C, g, g, g) of the window whose first model-grid voxel is ``start``
        (cached). ``voxel`` names the click in errors.

        Raises:
            PromptError: the window holds no varying intensities above 0.
        """
        key = tuple(int(s) for s in start)
        if key in self._embeddings:
            self._embeddings.move_to_end(key)
            return self._embeddings[key]
        assert self._volume is not None and self._grid is not None
        try:
            window = znormalize_positive(crop_window(self._volume, start, self.size))
        except ValueError as e:
            where = f"the window around click {tuple(voxel)}" if voxel is not None else f"the window at {key}"
            raise PromptError(f"{self._grid.source}: {where}: {e} (is it outside the body?)") from e
        with torch.no_grad(), autocast(self.device, self.amp):
            embedding = self.network.encode(window[None].to(self.device))
        self.encodings += 1
        self._embeddings[key] = embedding
        while len(self._embeddings) > self.cached_windows:
            self._embeddings.popitem(last=False)
        return embedding
