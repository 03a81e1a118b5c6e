"""SAM-Med3D's preprocessing: the 1.5 mm model grid, 128³ windows on it, and the z-score over voxels > 0.

The official pipeline (SAM-Med3D ``utils/prepare_data_from_nnUNet.py``, ``train.py``, ``validation.py``;
torchio 1.2.1 semantics):
1. resample to 1.5 mm isotropic (image trilinear, label nearest); we also bring the axes to RAS, as the
   official MedIM path does (``ToCanonical``), so point coordinates mean the same on every input;
2. clamp CT to [-1000, 1000] HU (``train.py``, datasets whose path contains ``/ct_``);
3. crop or zero-pad a 128³ window (``CropOrPad``; padding is the raw value 0, before normalisation),
   centred on the target's bounding box in evaluation, on the first click in interactive use;
4. z-score the window with mean and unbiased std of its voxels > 0, applied to all voxels
   (``ZNormalization(masking_method=x > 0)``; MONAI's ``NormalizeIntensity(nonzero=True)`` differs).

Arrays are channel-first (C, x, y, z) on the model grid, whose voxel axes are R, A, S.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Spacing

from bundles.io.grid import RAS_LABELS

__all__ = [
    "SPACING_MM",
    "CT_CLAMP_HU",
    "to_model_grid",
    "clamp_ct",
    "box_window_start",
    "point_window_start",
    "znormalize_positive",
]

#: Model grid spacing in mm (official torchio ``Resample(1.5)``).
SPACING_MM = 1.5
#: CT intensity clamp in HU (official ``train.py``).
CT_CLAMP_HU = (-1000.0, 1000.0)


def to_model_grid(volume: MetaTensor, spacing: float = SPACING_MM, mode: str = "bilinear") -> MetaTensor:
    """(C, X, Y, Z) with its affine -> (C, x, y, z) with RAS voxel axes at ``spacing`` mm.

    ``mode``: ``"bilinear"`` (trilinear) for images, ``"nearest"`` for labels.
    """
    oriented = Orientation(axcodes="RAS", labels=RAS_LABELS)(volume)
    out = Spacing(pixdim=(spacing,) * 3, mode=mode, padding_mode="zeros")(oriented)
    return out


def clamp_ct(volume: torch.Tensor) -> torch.Tensor:
    """CT intensities clamped to :data:`CT_CLAMP_HU`."""
    return volume.clamp(*CT_CLAMP_HU)


def box_window_start(mask: torch.Tensor | np.ndarray, size: int) -> np.ndarray:
    """First voxel (3 ints, may be negative) of the ``size``³ window centred on the bounding box of ``mask``
    (x, y, z), by torchio ``CropOrPad``'s rule: centre c = (first + last + 1) / 2; when ``size`` is even and c
    is not an integer, or odd and c is an integer, c -= 0.5; start = c - size / 2.

    Raises:
        ValueError: ``mask`` is empty.
    """
    idx = np.argwhere(np.asarray(mask))
    if idx.size == 0:
        raise ValueError("cannot centre a window on an empty mask")
    centre = (idx.min(0) + idx.max(0) + 1) / 2.0
    shift = (centre == np.floor(centre)) != (size % 2 == 0)
    centre = centre - 0.5 * shift
    return (centre - size / 2.0).astype(np.int64)


def point_window_start(point: Sequence[float], size: int) -> np.ndarray:
    """First voxel of the ``size``³ window centred on the model-grid voxel nearest to ``point``: that voxel
    lands at index ``size // 2`` of the window (as a one-voxel box would by :func:`box_window_start`)."""
    return np.floor(np.asarray(point, dtype=np.float64) + 0.5).astype(np.int64) - size // 2


def znormalize_positive(window: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std with mean and unbiased std over the voxels > 0, applied to every voxel.

    Raises:
        ValueError: fewer than two voxels > 0, or they are all equal (nothing to normalise by).
    """
    values = window[window > 0].to(torch.float64)
    if values.numel() < 2 or float(values.std()) == 0.0:
        raise ValueError("the window has no varying intensities above 0 to normalise by")
    mean, std = values.mean(), values.std()
    return ((window.to(torch.float64) - mean) / std).to(torch.float32)
