"""The result of converting an official checkpoint: our state dict and the fate of every official key."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Conversion", "conversion_summary"]


@dataclass
class Conversion:
    """``state``: our state dict (loads strictly into the family's network); ``used``: official keys that
    became ours; ``dropped``: official key -> the reason it is not used. Every official key is in one."""

    state: dict[str, torch.Tensor]
    used: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)


def conversion_summary(conversion: Conversion) -> dict[str, Any]:
    """What a converter prints about a conversion: keys used and dropped (counted by reason), and the number of
    values written (parameters and stored buffers)."""
    return {
        "keys_used": len(conversion.used),
        "keys_dropped": len(conversion.dropped),
        "dropped_by_reason": dict(Counter(conversion.dropped.values())),
        "values": sum(t.numel() for t in conversion.state.values()),
    }
