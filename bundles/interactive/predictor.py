"""The predictor of click models for the per-case job: each object's clicks through a click session."""

from __future__ import annotations

import numpy as np
from monai.data import MetaTensor

from bundles.interactive.prompt_check import ClickPrompts
from bundles.interactive.session import ClickSession
from bundles.io.cases import Case
from bundles.io.grid import ImageGrid

__all__ = ["ClickPredictor"]


class ClickPredictor:
    """The :class:`bundles.engines.segmentation_job.Predictor` of click models: the image is prepared once,
    then every object's clicks are applied one at a time (each click refines the object's mask)."""

    def __init__(self, session: ClickSession):
        self.session = session

    def __call__(self, image: MetaTensor, grid: ImageGrid, case: Case, prompts: ClickPrompts) -> tuple[np.ndarray, list[str]]:
        """Masks (K, *grid.shape) bool for the K objects of ``prompts``, and their names."""
        self.session.set_image(image[0], grid, prompts.modality)
        masks = []
        for obj in prompts.objects:
            for point, label in zip(obj.points, obj.labels):
                mask = self.session.add_click(point, positive=label == 1, obj=obj.name)
            masks.append(mask)
        return np.stack(masks), [o.name for o in prompts.objects]
