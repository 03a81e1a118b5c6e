"""SAMed's input: CT slices in a fixed HU window, scaled to [0, 1], 3 channels, at the network's input size.

Source: SAMed's data (TransUNet's Synapse preprocessing, hitachinsk/SAMed ``README`` and
``datasets/dataset_synapse.py``): HU clipped to [-125, 275], then (HU + 125) / 400; the one channel repeated
to 3; no mean/std normalisation (SAMed's pixel mean 0, std 1). Slices meet the network's input through
:class:`bundles.inferers.slice_frame.SliceFrame`: stretched to S x S as SAMed does (Synapse slices are 512 x
512; SAMed trains on 224 x 224 slices upsampled to 512 and tests 512 at 512), or, for models trained here,
resampled to fixed pixels.
"""

from __future__ import annotations

import torch

__all__ = ["HU_WINDOW", "scale_ct", "body_slices"]

#: HU window of SAMed / TransUNet preprocessing.
HU_WINDOW = (-125.0, 275.0)


def scale_ct(hu: torch.Tensor) -> torch.Tensor:
    """HU (any shape) -> [0, 1]: clip to :data:`HU_WINDOW`, then (HU - low) / (high - low)."""
    low, high = HU_WINDOW
    return (hu.clamp(low, high) - low) / (high - low)


def body_slices(scaled: torch.Tensor) -> list[bool]:
    """Per axial slice of a scaled volume (C, P, L, S): does it hold anything above the window's floor
    (-125 HU)? Slices that do not are air only: the model would see a constant image."""
    return [bool(v) for v in (scaled.amax(dim=(0, 1, 2)) > 0)]
