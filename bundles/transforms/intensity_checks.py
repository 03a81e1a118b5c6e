"""Sanity check that a CT volume is in Hounsfield units before HU-based normalisation."""

from __future__ import annotations

from os import PathLike

import numpy as np
import torch

from bundles.errors import BundleInputError

__all__ = ["check_ct_intensities", "SCALED_RANGE"]

SCALED_RANGE = (-1.0, 256.0)
"""A CT whose every voxel lies in this range is not in HU: a body CT contains air (about -1000 HU) and
fat (about -100 HU), while images rescaled to [0, 1] or stored as 0..255 (8-bit screenshots/exports) fit
inside it. Bound chosen by this project, after the failure reported for comparable tools (empty masks)."""


def check_ct_intensities(image: torch.Tensor | np.ndarray, path: str | PathLike | None) -> None:
    """Refuse a CT image (any shape, finite values) that does not look like Hounsfield units.

    Raises:
        BundleInputError: every value lies within :data:`SCALED_RANGE`; the message names ``path`` and the
            range found.
    """
    values = image if isinstance(image, torch.Tensor) else np.asarray(image)
    low, high = float(values.min()), float(values.max())
    if SCALED_RANGE[0] <= low and high <= SCALED_RANGE[1]:
        raise BundleInputError(
            path,
            f"CT values span only {low:g}..{high:g}; this looks scaled to [0,1] or 0..255, not HU."
            " Pass the original CT in Hounsfield units (air about -1000), or use the MRI modality for non-CT images",
        )
