"""Intensity normalisation as SAT was trained (official SAT inference.py, official ``data/inference_dataset.py``).

- CT: clip to [-500, 1000] HU, then z-score with the mean and population std of the clipped volume.
- MRI and PET: clip to the 0.5th and 99.5th percentiles of the volume, then z-score likewise. Every voxel,
  background included, enters the statistics, as in the official code.
"""

from __future__ import annotations

import torch

from bundles.io.modality import normalize_modality

__all__ = ["CT_WINDOW_HU", "MR_PERCENTILES", "normalize_intensity"]

#: SAT's CT clip window in HU (official inference and SAT-DS loader).
CT_WINDOW_HU = (-500.0, 1000.0)
#: SAT's percentile clip for all non-CT modalities (official inference and SAT-DS loader).
MR_PERCENTILES = (0.5, 99.5)


def normalize_intensity(image: torch.Tensor, modality: str) -> torch.Tensor:
    """Return ``image`` (any shape, float) clipped and z-scored the SAT way for ``modality``.

    Raises:
        PromptError: unknown modality (see :func:`bundles.sat.vocabulary.normalize_modality`).
    """
    modality = normalize_modality(modality)
    image = image.float()
    if modality == "ct":
        low, high = CT_WINDOW_HU
    else:
        flat = image.flatten()
        if flat.numel() > 16_000_000:  # torch.quantile's size limit; a strided sample gives the same percentiles
            flat = flat[:: flat.numel() // 16_000_000 + 1]
        low, high = (torch.quantile(flat, q / 100.0).item() for q in MR_PERCENTILES)
    clipped = image.clamp(low, high)
    std = clipped.std(unbiased=False)
    return (clipped - clipped.mean()) / std.clamp_min(1e-8)
