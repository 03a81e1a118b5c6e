"""Which cases of a run this process segments: a scheduler shard (``--shard i/n``) and a torchrun rank.

Two ways to spread a cohort, which combine:

- independent jobs of a cluster scheduler: ``--shard i/n`` (``i`` = 0 .. n-1, like nnU-Net's
  ``-part_id``/``-num_parts``) takes cases ``i, i+n, i+2n, ...`` of the sorted case list;
- ``torchrun --nproc_per_node=N`` (any number of nodes): the shard's cases are split over the ranks with
  MONAI's ``DistributedSampler(even_divisible=False, shuffle=False)``, so every case runs on exactly one
  rank and none twice (no padding of the last rank by repeated cases).

Every process lists the cases itself, in the same sorted order, so no case list travels between them; at
the end the ranks' records are gathered on rank 0 (``all_gather_object``, gloo or NCCL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVar

from monai.data import DistributedSampler

from bundles.engines.ranks import gathered, rank_and_world
from bundles.errors import ConfigurationError

__all__ = ["CaseShare", "parse_shard"]

T = TypeVar("T")


def parse_shard(shard: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``None`` or ``""`` -> ``(0, 1)`` (all cases).

    Raises:
        ConfigurationError: anything else, naming the accepted form.
    """
    if shard is None or str(shard).strip() == "":
        return 0, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(shard))
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ConfigurationError(f"--shard {shard!r} is not of the form i/n with 0 <= i < n (e.g. 0/4 ... 3/4 for four jobs)")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class CaseShare:
    """This process's place in a run: scheduler shard ``shard`` of ``shards``, torchrun ``rank`` of ``world``."""

    shard: int = 0
    shards: int = 1
    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls, shard: str | None = None) -> CaseShare:
        """The share of this process: ``shard`` as given, rank and world size from ``torch.distributed`` when
        a process group is initialised (``configs/mgpu_inference.json`` does it), else rank 0 of 1."""
        index, count = parse_shard(shard)
        return cls(index, count, *rank_and_world())

    @property
    def label(self) -> str:
        """``""`` for a whole run, else ``shard-i-of-n`` (the folder of a shard's run files)."""
        return "" if self.shards == 1 else f"shard-{self.shard}-of-{self.shards}"

    @property
    def writes_run_files(self) -> bool:
        """Rank 0 writes the run's report, failures and timings; the other ranks only their cases' outputs."""
        return self.rank == 0

    def select(self, items: list[T]) -> list[tuple[int, T]]:
        """This process's items with their index in ``items``, in order."""
        in_shard = list(range(len(items)))[self.shard :: self.shards]
        if self.world == 1:
            mine = in_shard
        elif len(in_shard) < self.world:  # MONAI's sampler refuses this; its split would give ranks < n one case each
            mine = in_shard[self.rank :: self.world]
        else:
            sampler = DistributedSampler(in_shard, even_divisible=False, shuffle=False, num_replicas=self.world, rank=self.rank)
            mine = [in_shard[i] for i in sampler]
        return [(i, items[i]) for i in mine]

    def gather(self, values: list[Any]) -> list[Any]:
        """Every rank's ``values`` concatenated (rank 0's first), on every rank; ``values`` itself when alone."""
        return [v for part in gathered(list(values)) for v in part]
