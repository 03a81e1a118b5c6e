"""SAMed's input: CT slices in a fixed HU window, scaled to [0, 1], 3 channels, at the network's input size.

Source: SAMed's data (TransUNet's Synapse preprocessing, hitachinsk/SAMed ``README`` and
``datasets/dataset_synapse.py``): HU clipped to [-125, 275], then (HU + 125) / 400; the one channel repeated
to 3; no mean/std normalisation (SAMed's pixel mean 0, std 1). Slices are resized to the network input
(SAMed trains on 224 x 224 slices upsampled to 512 and tests 512 slices at 512); outputs are resized back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["HU_WINDOW", "scale_ct", "to_network_input", "to_slice_size", "body_slices"]

#: HU window of SAMed / TransUNet preprocessing.
HU_WINDOW = (-125.0, 275.0)


def scale_ct(hu: torch.Tensor) -> torch.Tensor:
    """HU (any shape) -> [0, 1]: clip to :data:`HU_WINDOW`, then (HU - low) / (high - low)."""
    low, high = HU_WINDOW
    return (hu.clamp(low, high) - low) / (high - low)


def to_network_input(slices: torch.Tensor, size: int) -> torch.Tensor:
    """Scaled slices (B, 1, R, A) -> (B, 3, size, size): bilinear resize (``align_corners=False``,
    antialiased when shrinking), channel repeated 3 times."""
    if tuple(slices.shape[-2:]) != (size, size):
        shrink = min(slices.shape[-2:]) > size
        slices = F.interpolate(slices, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return slices.expand(-1, 3, -1, -1)


def to_slice_size(logits: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Network outputs (B, K, size, size) -> (B, K, *shape), bilinear (``align_corners=False``)."""
    if tuple(logits.shape[-2:]) == tuple(shape):
        return logits
    return F.interpolate(logits, size=shape, mode="bilinear", align_corners=False)


def body_slices(scaled: torch.Tensor) -> list[bool]:
    """Per axial slice of a scaled volume (C, R, A, S): does it hold anything above the window's floor
    (-125 HU)? Slices that do not are air only: the model would see a constant image."""
    return [bool(v) for v in (scaled.amax(dim=(0, 1, 2)) > 0)]
