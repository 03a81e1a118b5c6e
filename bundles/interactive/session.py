"""What an interactive click model offers: a session that prepares an image once, then answers each click
with the object's mask on the input grid (segment-anything's ``SamPredictor`` pattern, in 3D).

The core's click predictor (:mod:`bundles.interactive.predictor`), the MONAI Label click task
(:mod:`bundles.serving.click_task`) and :func:`bundles.open_session` work with any object of this shape; a
family implements it (e.g. with cached image embeddings, so a click costs only its decoder).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from bundles.io.grid import ImageGrid

__all__ = ["ClickSession"]


@runtime_checkable
class ClickSession(Protocol):
    """Interactive segmentation of one image, object by object, click by click.

    Objects are named by strings; each keeps its own clicks. Clicks are voxel indices ``(i, j, k)`` of the
    input image (continuous values allowed); masks are bool ``(X, Y, Z)`` arrays on the input grid.

    Attributes:
        encodings: image-encoder runs since :meth:`set_image` (what caching saves; the server reports it).
    """

    encodings: int

    def set_image(self, image: torch.Tensor | np.ndarray, grid: ImageGrid, modality: str | None = None) -> None:
        """Prepare ``image`` ((X, Y, Z) or (1, X, Y, Z) on ``grid``; ``modality`` canonical, e.g. ``"ct"``, or
        None); forget all objects."""
        ...

    def add_click(self, voxel: Sequence[float], positive: bool = True, obj: str = "object") -> np.ndarray:
        """Add a click (inside the object when ``positive``) to ``obj``; its mask after the click.

        Raises:
            PromptError: no image set, or the click is outside the image (or where the model cannot see).
        """
        ...

    def undo(self, obj: str = "object") -> np.ndarray:
        """Remove the last click of ``obj``; its mask as it was before that click (empty with no click left)."""
        ...

    def reset(self, obj: str | None = None) -> None:
        """Forget the clicks of ``obj`` (of every object when None); the image stays."""
        ...

    def mask(self, obj: str = "object") -> np.ndarray:
        """The current mask of ``obj`` (empty without clicks)."""
        ...

    @property
    def grid(self) -> ImageGrid:
        """The input image's grid (what masks are returned on)."""
        ...
