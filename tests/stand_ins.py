"""Stand-ins the server tests load through a model's config overlay (``_target_: tests.stand_ins...``)."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["SlowPredictor"]


class SlowPredictor:
    """A predictor that waits ``seconds`` before running ``inner``: a stand-in for a whole-scan inference that
    holds its model for minutes on a CPU, to show that other models' requests are answered meanwhile."""

    def __init__(self, inner: Any, seconds: float):
        self.inner = inner
        self.seconds = seconds

    def __call__(self, *args: Any) -> Any:
        time.sleep(self.seconds)
        return self.inner(*args)
