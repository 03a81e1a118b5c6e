"""Training samples for Toy3D: one object of one case per sample, on the case's whole volume (the network
works on the input grid, so nothing is resampled or cropped).

Data is a case list (``.jsonl`` of ``{'image', 'mask', 'legend', ...}``, what ``/train`` hands over through the
default ``serving_train_data`` hook); every label value of a case's legend that occurs in its mask is an
object. Cases are read once (:func:`bundles.io.labelled_case.read_labelled_case`) and kept in memory.
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import numpy as np
import torch

from bundles.errors import BundleInputError, ConfigurationError
from bundles.io.cases import parse_cases
from bundles.io.labelled_case import read_labelled_case
from bundles.toy3d.inputs import network_image

__all__ = ["ObjectSampler", "collate_volumes"]


class ObjectSampler:
    """Endless samples ``{'image': (1, X, Y, Z) network units, 'label': (1, X, Y, Z) 0/1}`` of objects drawn
    uniformly, with the generator ``rng`` (part of the training checkpoint through ``SampledBatches``).

    Args:
        data: case list (``.jsonl``/``.json``) or an ``input_dict``.
        seed, rank: the random stream (``seed + rank`` under distributed training).

    Raises:
        BundleInputError: a case without mask or legend, or no labelled object in any case.
    """

    def __init__(self, data: str | PathLike | dict, seed: int = 0, rank: int = 0) -> None:
        cases = parse_cases(data if isinstance(data, dict) else {"cases": str(data)})
        labelled = [read_labelled_case(case, "a training case") for case in cases]
        self.images = [network_image(c.image.as_tensor()) for c in labelled]
        self.labels = [c.labels.as_tensor().to(torch.int16) for c in labelled]
        self.objects = [(i, value) for i, case in enumerate(cases) for value in sorted(case.legend) if bool((self.labels[i] == value).any())]
        if not self.objects:
            raise BundleInputError(cases[0].image if cases else str(data), "no legend value occurs in its mask; nothing to train on")
        self.rng = np.random.default_rng(seed + rank)

    def __iter__(self) -> ObjectSampler:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        case, value = self.objects[int(self.rng.integers(len(self.objects)))]
        return {"image": self.images[case], "label": (self.labels[case] == value).float()}


def collate_volumes(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack samples to ``{'image': (B, 1, X, Y, Z), 'label': (B, 1, X, Y, Z)}``.

    Raises:
        ConfigurationError: samples of different shapes (cases of other sizes need ``batch_size`` 1).
    """
    shapes = sorted({tuple(s["image"].shape) for s in samples})
    if len(shapes) > 1:
        raise ConfigurationError(f"batch_size {len(samples)}: the training cases have volumes of shapes {shapes}; use batch_size 1")
    return {key: torch.stack([s[key] for s in samples]) for key in ("image", "label")}
