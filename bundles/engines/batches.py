"""Endless training batches from a family's sample iterator, resumable from a checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

__all__ = ["SampledBatches", "Sampler"]


class Sampler(Protocol):
    """An endless iterator of training samples whose randomness is the generator ``rng``."""

    rng: np.random.Generator

    def __next__(self) -> Any: ...


class SampledBatches:
    """Endless batches of ``batch_size`` samples of ``sampler``, combined by ``collate``.

    The sampler's random state is part of the training checkpoint (``state_dict``), so a resumed run
    continues the same sample stream.
    """

    def __init__(self, sampler: Sampler, collate: Callable[[list[Any]], dict[str, Any]], batch_size: int = 1):
        self.sampler = sampler
        self.collate = collate
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        return self.collate([next(self.sampler) for _ in range(self.batch_size)])

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.sampler.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.rng.bit_generator.state = state["rng"]
