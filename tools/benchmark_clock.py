"""Seconds and peak memory of one benchmark measurement, on the CPU or a CUDA GPU.

CUDA kernels run asynchronously, so :class:`Timer` synchronizes the device before starting and before
stopping the clock; on the CPU it is a plain ``time.perf_counter`` interval. :func:`peak_memory` reports the
process's peak resident set (``ru_maxrss``, building the network included) and, on CUDA, the peak of
``torch.cuda.max_memory_allocated`` (tensors only, not the CUDA context or the caching allocator's slack).
"""

from __future__ import annotations

import resource
import time

import torch

__all__ = ["Timer", "peak_memory"]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """``with Timer(device) as t: ...`` then ``t.seconds`` (wall seconds of the block, device work included)."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Timer:
        _synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        _synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


def peak_memory(device: str | torch.device = "cpu") -> dict[str, float | None]:
    """``{"peak_rss_gb": this process's peak RSS, "gpu_peak_gb": peak CUDA tensor memory or None on the CPU}``
    (GiB, 2 decimals)."""
    device = torch.device(device)
    gpu = round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None
    return {"peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2), "gpu_peak_gb": gpu}
