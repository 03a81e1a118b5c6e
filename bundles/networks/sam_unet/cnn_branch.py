"""SAM-UNet's CNN branch: a torchvision ResNet cut into a stem and its four stages (paper: ResNet-34 / -50).

Keys (SAM-UNet's checkpoint layout): ``stage0.0`` / ``stage0.1`` = the ResNet's ``conv1`` / ``bn1`` (then
ReLU and max-pool, no parameters), ``stage1..4`` = ``layer1..4``. For a 256 x 256 input the stages give
features at 64, 32, 16 and 8 pixels with :data:`RESNET_CHANNELS` channels. Built without weights: nothing
is downloaded at run time; ImageNet weights, where wanted, come from a file through the converter.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet

from bundles.errors import ConfigurationError

__all__ = ["ResNetBranch", "RESNET_CHANNELS"]

#: Output channels of stages 1..4 per torchvision ResNet.
RESNET_CHANNELS = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
}


class ResNetBranch(nn.Module):
    """``forward(image (B, 3, H, W))`` -> four features (B, C_i, H / 2^(i+2), W / 2^(i+2)), i = 0..3.

    Raises:
        ConfigurationError: an unknown ResNet name.
    """

    def __init__(self, name: str = "resnet34") -> None:
        super().__init__()
        if name not in RESNET_CHANNELS:
            raise ConfigurationError(f"unknown CNN branch {name!r}; choose one of {', '.join(RESNET_CHANNELS)}")
        net = getattr(resnet, name)(weights=None)
        self.channels = RESNET_CHANNELS[name]
        self.stage0 = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stage1, self.stage2, self.stage3, self.stage4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = self.stage0(image)
        features = []
        for stage in (self.stage1, self.stage2, self.stage3, self.stage4):
            x = stage(x)
            features.append(x)
        return features
