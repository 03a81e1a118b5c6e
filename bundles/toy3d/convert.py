"""The Toy3D weights command: ``python -m bundles.toy3d.convert`` (the converter its bundle declares).

    python -m bundles.toy3d.convert --output <bundle>/models/model.pt

There is no released checkpoint to convert: the command writes the network's initial weights (hand-set
channel 0, the other channels drawn from ``seed``), through the core's converter shape
(:func:`bundles.checkpoints.converter.save_converted`: atomic write and printed summary;
:func:`~bundles.checkpoints.converter.run_converter`: ``--help`` and one-line errors).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch

from bundles.checkpoints.converter import run_converter, save_converted
from bundles.networks.toy3d import Toy3D

__all__ = ["convert", "main"]


def convert(output: str, variant: str = "tiny", seed: int = 0) -> dict[str, Any]:
    """Write Toy3D's initial weights (a plain state dict) to ``output`` atomically and print a summary.

    Args:
        output: the file to write (the bundle's ``models/model.pt``).
        variant: the network variant ("tiny").
        seed: the random stream of the channels that are not set by hand.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = Toy3D.build(variant).state_dict()
    summary = {"variant": variant, "seed": seed, "tensors": len(state), "values": sum(t.numel() for t in state.values())}
    return save_converted(state, output, summary)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bundles.toy3d.convert --output ...`` on ``argv`` (default the process's arguments); the exit status."""
    return run_converter(convert, argv, "bundles.toy3d.convert")


if __name__ == "__main__":
    sys.exit(main())
