"""Random per-organ intensity shifts: a crude simulation of contrast uptake for models trained on few scans.

Intravenous contrast brightens organs by different amounts (on the shipped scans: liver 46 HU without
contrast on patient A, 93 HU with it on patient B; spleen 35 -> 80 HU; aorta 41 -> 151 HU), while fat, air
and bone stay put. A model trained on one non-contrast scan learns each organ's brightness and mislabels
the same organ after contrast. Shifting every labelled organ by its own random offset teaches it that an
organ's brightness relative to its neighbours varies. Not part of any official recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.transforms import Randomizable

from bundles.errors import ConfigurationError

__all__ = ["RandOrganIntensityShift"]


class RandOrganIntensityShift(Randomizable):
    """Add an offset drawn uniformly from ``offsets`` to the voxels of each label value > 0, independently per
    label value and each with probability ``prob``.

    Args:
        offsets: (low, high) range of the offset, in the image's units (for SAMed's [0, 1] scaling of
            [-125, 275] HU, 0.1 is 40 HU).
        prob: probability that a given label value is shifted.

    Call with ``image`` and ``label`` of the same shape (any, e.g. (1, H, W)); returns a new float image.
    Reseed it with :func:`bundles.transforms.reseed.reseed` so the shifts follow the sampler's seed.

    Raises:
        ConfigurationError: ``offsets`` not (low, high) with low <= high, ``prob`` outside [0, 1], or
            image and label shapes differ (at call time).
    """

    def __init__(self, offsets: Sequence[float], prob: float = 0.5) -> None:
        if len(offsets) != 2 or offsets[0] > offsets[1]:
            raise ConfigurationError(f"offsets must be (low, high) with low <= high, got {list(offsets)}")
        if not 0.0 <= prob <= 1.0:
            raise ConfigurationError(f"prob must be in [0, 1], got {prob}")
        self.offsets = (float(offsets[0]), float(offsets[1]))
        self.prob = float(prob)

    def randomize(self, data: None = None) -> None:  # draws happen per label value in __call__
        pass

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if image.shape != label.shape:
            raise ConfigurationError(f"image {tuple(image.shape)} and label {tuple(label.shape)} must have one shape")
        out = image.float().clone()
        for value in torch.unique(label).tolist():
            if value <= 0:
                continue
            offset = self.R.uniform(*self.offsets)
            if self.R.random() < self.prob:
                out[label == value] += offset
        return out
