"""The result of converting an official checkpoint: our state dict and the fate of every official key."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Conversion"]


@dataclass
class Conversion:
    """``state``: our state dict (loads strictly into the family's network); ``used``: official keys that
    became ours; ``dropped``: official key -> the reason it is not used. Every official key is in one."""

    state: dict[str, torch.Tensor]
    used: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
