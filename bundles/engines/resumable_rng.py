"""A training module's own random stream (e.g. where its simulated clicks fall), saved with the checkpoint so a
resumed run draws what the uninterrupted run would have drawn (``engines/run_checkpoint.py`` saves the module's
state dict, which carries a module's extra state)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ResumableRng"]


class ResumableRng:
    """Mixin for a ``torch.nn.Module``: its ``rng`` (a NumPy ``Generator``, set in ``__init__``) is the module's
    extra state (``get_extra_state`` / ``set_extra_state`` of ``torch.nn.Module``)."""

    rng: np.random.Generator

    def get_extra_state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
