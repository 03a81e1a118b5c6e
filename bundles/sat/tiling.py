"""How SAT's sliding windows cover a preprocessed image: the official tiling, or the opt-in ``fit`` tiling.

- ``standard`` (default, the official ``inference.py``): windows of ``roi_size`` at half-window stride
  (overlap 0.5), Gaussian blending. A 329 x 312 x 100 crop takes 2 x 2 x 2 = 8 windows of 288 x 288 x 96.
- ``fit``: per axis the fewest windows of at most :data:`FIT_GROWTH` x ``roi_size`` that cover the crop, each
  as small as covers its share, rounded up to what the U-Net accepts (a multiple of its divisor, 32), without
  overlap. The same crop takes one 352 x 320 x 128 window: about a quarter of the voxels to compute. The
  network sees other context than it was trained with, so masks differ: the SAT-Nano docs publish the
  agreement with ``standard``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bundles.errors import ConfigurationError

__all__ = ["TILINGS", "FIT_GROWTH", "tiling_for"]

TILINGS = ("standard", "fit")
FIT_GROWTH = 1.25
"""Largest fit window per axis relative to ``roi_size`` (before rounding up to the divisor): one window up to
25 % larger than the trained one; beyond that the crop is split."""


def tiling_for(kind: str, crop: Sequence[int], roi_size: Sequence[int], divisor: int, overlap: float = 0.5) -> tuple[tuple[int, ...], float]:
    """The window size and overlap that ``kind`` uses on a preprocessed image of shape ``crop`` (X, Y, Z);
    ``overlap`` is the standard tiling's (official 0.5).

    Raises:
        ConfigurationError: an unknown ``kind``.
    """
    if kind == "standard":
        return tuple(int(r) for r in roi_size), overlap
    if kind != "fit":
        raise ConfigurationError(f"tiling {kind!r} is not one of {', '.join(TILINGS)}")
    window = []
    for c, r in zip(crop, roi_size):
        count = max(1, math.ceil(int(c) / (FIT_GROWTH * int(r))))
        window.append(max(divisor, math.ceil(int(c) / count / divisor) * divisor))
    return tuple(window), 0.0
