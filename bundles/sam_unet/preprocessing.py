"""SAM-UNet's input: 8-bit RGB slices, SAM's pixel normalisation, the longest side resized to 256 and padded.

- 8 bit (:func:`to_uint8`): CT in HU through a soft-tissue window of :data:`CT_WINDOW_HU`; other
  modalities between their 0.5th and 99.5th percentiles; grey replicated to RGB. (SA-Med2D's own
  conversion is not published with the data; this is our choice, applied the same way when converting
  training volumes and at inference.)
- Normalisation (:func:`normalize`): SAM's ImageNet mean / std on 0-255 RGB (segment-anything
  ``Sam.pixel_mean`` / ``pixel_std``), which SAM-UNet keeps.
- Framing: :class:`bundles.inferers.slice_frame.SliceFrame` ``"longest_side"`` (SAM's ``ResizeLongestSide`` +
  padding at the end of each axis).
"""

from __future__ import annotations

import torch

from bundles.io.modality import normalize_modality

__all__ = ["CT_WINDOW_HU", "PIXEL_MEAN", "PIXEL_STD", "to_uint8", "normalize"]

#: Soft-tissue window (level 40, width 400 HU).
CT_WINDOW_HU = (-160.0, 240.0)
#: SAM's pixel mean and std on 0-255 RGB.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def to_uint8(volume: torch.Tensor, modality: str | None) -> torch.Tensor:
    """A volume (any shape; HU for CT) -> uint8 values 0..255 (see the module doc)."""
    if modality and normalize_modality(modality) == "ct":
        low, high = CT_WINDOW_HU
    else:
        flat = volume.flatten().float()
        sample = flat[:: max(1, flat.numel() // 1_000_000)]
        low, high = (float(q) for q in torch.quantile(sample, torch.tensor([0.005, 0.995])))
        high = max(high, low + 1e-6)
    scaled = (volume.float().clamp(low, high) - low) / (high - low) * 255.0
    return scaled.round().to(torch.uint8)


def normalize(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) 0..255 -> SAM-normalised float."""
    mean = torch.tensor(PIXEL_MEAN, device=rgb.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=rgb.device).view(1, 3, 1, 1)
    return (rgb.float() - mean) / std
