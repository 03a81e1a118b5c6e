"""Seconds spent in each stage of a case's model work (preprocessing, network, resampling, ...).

A family marks its stages with ``with stage("network"):``; the per-case job records them around each
case with :func:`recording` and writes them to ``timings.csv`` beside reading and writing, so a benchmark
can tell the network from the work around it. Outside :func:`recording` a stage costs one clock read.
Stages add up when repeated (one per prompt, say) and must not nest (nested time would count twice).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["stage", "recording"]

_times: ContextVar[dict[str, float] | None] = ContextVar("stage_times", default=None)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the time spent in the ``with`` block to stage ``name`` of the recording in progress, if any."""
    start = time.perf_counter()
    try:
        yield
    finally:
        times = _times.get()
        if times is not None:
            times[name] = times.get(name, 0.0) + time.perf_counter() - start


@contextmanager
def recording() -> Iterator[dict[str, float]]:
    """Collect the stages run inside the ``with`` block: ``{stage name: seconds}``, filled as they end."""
    times: dict[str, float] = {}
    token = _times.set(times)
    try:
        yield times
    finally:
        _times.reset(token)
