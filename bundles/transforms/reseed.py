"""Seed MONAI random transforms from a sampler's generator, so augmentation follows the training seed."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from monai.transforms import Randomizable

__all__ = ["reseed"]


def reseed(transforms: Iterable[object | None], rng: np.random.Generator) -> None:
    """Give every MONAI ``Randomizable`` in ``transforms`` a fresh seed drawn from ``rng``.

    MONAI random transforms keep a random state of their own that ``set_determinism`` does not touch;
    reseeding them before every sample makes the sample stream depend on the sampler's seed alone, and
    resume exactly from a checkpoint of the sampler's generator. ``None`` entries are skipped (a draw is
    still made only for transforms that are ``Randomizable``).
    """
    for transform in transforms:
        if isinstance(transform, Randomizable):
            transform.set_random_state(seed=int(rng.integers(2**31)))
