"""Toy3D: two 3x3x3 convolutions that encode the image once and a decoder that reads the image features with
two click maps; small enough to run on a whole volume of the input grid on a CPU.

Its initial weights are set by hand (no training needed to see it work): hidden channel 0 of the encoder
marks voxels brighter than ``bright`` (image units), and channel 0 of the decoder keeps those voxels where
the positive click map exceeds the negative one by about 0.25; the output reads only that channel. The other
channels start random and reach the output only once trained (their output weights start at zero), so
training can improve on the hand-set rule.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bundles.networks.variants import variant_settings

__all__ = ["Toy3D", "VARIANTS"]

#: Named sizes (``Toy3D.tiny``): hidden channels, and the image value the hand-set rule calls bright
#: (image units: HU / 1000, so 0.5 = 500 HU, bone and contrast-filled vessels).
VARIANTS: dict[str, dict[str, Any]] = {"tiny": {"channels": 4, "bright": 0.5}}

#: Hand-set gains: encoder feature 4 x (image - bright); decoder 5 x feature + 10 x (positive - negative) - 12,
#: so a voxel 0.5 above ``bright`` is kept where the click maps differ by more than 0.25.
_FEATURE_GAIN, _DECODER_FEATURE, _DECODER_CLICKS, _DECODER_BIAS = 4.0, 5.0, 10.0, -12.0
#: Output: 2 x decoder channel 0 - 1 (logit -1 where the rule keeps nothing).
_OUTPUT_GAIN, _OUTPUT_BIAS = 2.0, -1.0


class Toy3D(nn.Module):
    """Image features computed once per image, decoded with each new set of clicks.

    Args:
        channels: hidden channels of the encoder and the decoder.
        bright: image value above which the hand-set rule marks a voxel (module docstring).

    Shapes: :meth:`encode` (B, 1, X, Y, Z) image in HU / 1000 -> (B, C, X, Y, Z) features; :meth:`decode`
    features and (B, 2, X, Y, Z) click maps (positive, negative; values in [0, 1]) -> (B, 1, X, Y, Z) logits.
    """

    def __init__(self, channels: int = 4, bright: float = 0.5) -> None:
        super().__init__()
        self.channels = channels
        self.encoder = nn.Sequential(nn.Conv3d(1, channels, 3, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.Conv3d(channels + 2, channels, 3, padding=1), nn.ReLU(), nn.Conv3d(channels, 1, 1))
        self._hand_set(bright)

    @torch.no_grad()
    def _hand_set(self, bright: float) -> None:
        """Channel 0 of encoder and decoder, and the output, as the module docstring says."""
        encoder, decoder, output = self.encoder[0], self.decoder[0], self.decoder[2]
        encoder.weight[0].zero_()
        encoder.weight[0, 0, 1, 1, 1] = _FEATURE_GAIN
        encoder.bias[0] = -_FEATURE_GAIN * bright
        decoder.weight[0].zero_()
        decoder.weight[0, 0, 1, 1, 1] = _DECODER_FEATURE
        decoder.weight[0, self.channels, 1, 1, 1] = _DECODER_CLICKS
        decoder.weight[0, self.channels + 1, 1, 1, 1] = -_DECODER_CLICKS
        decoder.bias[0] = _DECODER_BIAS
        output.weight.zero_()
        output.weight[0, 0] = _OUTPUT_GAIN
        output.bias.fill_(_OUTPUT_BIAS)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 1, X, Y, Z) image -> (B, C, X, Y, Z) features."""
        return self.encoder(image)

    def decode(self, features: torch.Tensor, click_maps: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) features, (B, 2, X, Y, Z) click maps -> (B, 1, X, Y, Z) logits."""
        return self.decoder(torch.cat([features, click_maps.to(features.dtype)], dim=1))

    def forward(self, image: torch.Tensor, click_maps: torch.Tensor) -> torch.Tensor:
        """(B, 1, X, Y, Z) image, (B, 2, X, Y, Z) click maps -> (B, 1, X, Y, Z) logits."""
        return self.decode(self.encode(image), click_maps)

    @classmethod
    def build(cls, variant: str = "tiny", **overrides: Any) -> Toy3D:
        """The named variant (:data:`VARIANTS`) with ``overrides`` replacing its settings.

        Raises:
            ConfigurationError: unknown variant.
        """
        return cls(**variant_settings(VARIANTS, variant, overrides, "Toy3D"))

    @classmethod
    def tiny(cls, **overrides: Any) -> Toy3D:
        """4 hidden channels, bright above 0.5 (500 HU)."""
        return cls.build("tiny", **overrides)
