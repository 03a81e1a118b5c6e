"""How a 2D slice meets a network's S x S input, and how the outputs go back onto the slice.

Three framings (``mode``):
- ``"stretch"`` (SAMed): the whole slice resized to S x S, whatever its shape and pixel size;
- ``"longest_side"`` (SAM, SAM-UNet: ``ResizeLongestSide`` + zero padding): resized so its longest side is
  S, aspect kept, padded at the end of each axis to S x S;
- ``"spacing"``: resampled to ``spacing_mm`` pixels and centred in S x S (padded, or cropped to the central
  S x spacing mm), so anatomy has the same size in pixels on every scan (models trained here on scans of
  other sizes).
Images are resized bilinearly (antialiased when shrinking), labels by nearest neighbour. Outputs go back the
reverse way: padding removed (cropped borders come back as 0 in every channel), resized bilinearly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from bundles.errors import ConfigurationError

__all__ = ["SliceFrame", "MODES"]

MODES = ("stretch", "longest_side", "spacing")


def _centre_pads(shape: Sequence[int], size: int) -> list[int]:
    """F.pad amounts (last axis first) that centre ``shape`` in ``size`` x ``size``; negative = crop."""
    pads: list[int] = []
    for n in reversed(shape):
        before = (size - n) // 2
        pads += [before, size - n - before]
    return pads


def _end_pads(shape: Sequence[int], size: int) -> list[int]:
    """F.pad amounts that pad ``shape`` at the end of each axis to ``size`` (SAM's padding)."""
    return [p for n in reversed(shape) for p in (0, size - n)]


class SliceFrame:
    """Slices (B, C, H, W) with pixel size (mm) <-> the network's (B, C, S, S).

    Args:
        size: the network input side S.
        mode: one of :data:`MODES` (see the module doc).
        spacing_mm: the pixel size of ``"spacing"``.

    Raises:
        ConfigurationError: an unknown mode, or ``"spacing"`` without a positive ``spacing_mm``.
    """

    def __init__(self, size: int, mode: str = "stretch", spacing_mm: float | None = None):
        if mode not in MODES or (mode == "spacing" and not (spacing_mm and spacing_mm > 0)):
            raise ConfigurationError(f"slice framing {mode!r} (spacing_mm {spacing_mm}): choose one of {', '.join(MODES)}; 'spacing' needs spacing_mm > 0")
        self.size = size
        self.mode = mode
        self.spacing_mm = spacing_mm

    def _resampled_shape(self, shape: Sequence[int], pixel_mm: Sequence[float]) -> tuple[int, int]:
        if self.mode == "stretch":
            return (self.size, self.size)
        if self.mode == "longest_side":
            scale = self.size / max(shape)
            return tuple(max(1, int(n * scale + 0.5)) for n in shape)  # type: ignore[return-value]
        return tuple(max(1, round(n * p / self.spacing_mm)) for n, p in zip(shape, pixel_mm))  # type: ignore[return-value]

    def _pads(self, shape: Sequence[int]) -> list[int]:
        return _end_pads(shape, self.size) if self.mode == "longest_side" else _centre_pads(shape, self.size)

    def to_network(self, slices: torch.Tensor, pixel_mm: Sequence[float], mode: str = "bilinear") -> torch.Tensor:
        """(B, C, rows, columns) -> (B, C, S, S); ``mode`` "bilinear" (images, antialiased when shrinking) or "nearest" (labels)."""
        shape = self._resampled_shape(slices.shape[-2:], pixel_mm)
        if tuple(slices.shape[-2:]) != shape:
            if mode == "nearest":
                slices = F.interpolate(slices, size=shape, mode="nearest")
            else:
                shrink = any(t < n for t, n in zip(shape, slices.shape[-2:]))
                slices = F.interpolate(slices, size=shape, mode="bilinear", align_corners=False, antialias=shrink)
        if shape != (self.size, self.size):
            slices = F.pad(slices, self._pads(shape))
        return slices

    def to_network_coords(self, xy: torch.Tensor, slice_shape: Sequence[int], pixel_mm: Sequence[float]) -> torch.Tensor:
        """Prompt coordinates (..., 2) as SAM's (x, y) in slice pixels (x along the last axis) -> the same
        points at the network's input (scaled like the image, SAM's ``apply_coords``, plus any centring pad)."""
        h, w = slice_shape
        new_h, new_w = self._resampled_shape(slice_shape, pixel_mm)
        scale = torch.tensor([new_w / w, new_h / h], dtype=xy.dtype, device=xy.device)
        out = xy * scale
        if (new_h, new_w) != (self.size, self.size):
            pads = self._pads((new_h, new_w))  # [w before, w after, h before, h after]
            out = out + torch.tensor([pads[0], pads[2]], dtype=xy.dtype, device=xy.device)
        return out

    def to_slices(self, outputs: torch.Tensor, slice_shape: Sequence[int], pixel_mm: Sequence[float]) -> torch.Tensor:
        """Network outputs (B, K, S, S) -> (B, K, *slice_shape): padding removed (cropped parts become 0 in
        every channel, which argmax reads as background), resized bilinearly (``align_corners=False``)."""
        shape = self._resampled_shape(slice_shape, pixel_mm)
        if shape != (self.size, self.size):
            outputs = F.pad(outputs, [-p for p in self._pads(shape)])
        if tuple(outputs.shape[-2:]) != tuple(slice_shape):
            outputs = F.interpolate(outputs, size=tuple(slice_shape), mode="bilinear", align_corners=False)
        return outputs
