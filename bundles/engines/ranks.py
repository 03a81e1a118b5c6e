"""This process's place in a ``torch.distributed`` process group, and gathering a value from every rank.

Outside ``torchrun`` (no process group initialised) a process is rank 0 of 1 and gathering returns its own
value; the ``multi_gpu_train.json`` / ``mgpu_inference.json`` overlays initialise the group.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist

__all__ = ["in_process_group", "rank_and_world", "gathered"]


def in_process_group() -> bool:
    """True under ``torchrun`` once the process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process; ``(0, 1)`` outside a process group."""
    if in_process_group():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gathered(value: Any) -> list[Any]:
    """Every rank's ``value`` (any picklable object), in rank order, on every rank; ``[value]`` when alone.
    Every rank must call it (a collective)."""
    _, world = rank_and_world()
    if world == 1:
        return [value]
    values: list[Any] = [None] * world
    dist.all_gather_object(values, value)
    return values
