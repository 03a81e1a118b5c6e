"""Training samples for SAM-Med3D: one object per sample, in a 128³ window centred on it (official
``train.py``: ``CropOrPad`` on the object's bounding box, no jitter; ``RandomFlip`` on the three axes, the
only augmentation; samples with at most 1,000 object voxels in the window are replaced by others).

Data is the same case list as SAT's (``.jsonl`` of ``{'image', 'mask', 'legend', 'modality'}``): every label
value of every case's legend that occurs in its mask is an object. Images and masks are brought to the
1.5 mm RAS model grid once and kept in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import torch

from bundles.errors import BundleInputError
from bundles.io.cases import Case, parse_cases
from bundles.io.labelled_case import read_labelled_case
from bundles.io.modality import normalize_modality
from bundles.sam_med3d.preprocessing import (
    SPACING_MM,
    box_window_start,
    clamp_ct,
    to_model_grid,
    znormalize_positive,
)
from bundles.transforms.reseed import reseed
from bundles.transforms.window_crop import crop_window

__all__ = ["ObjectWindowSampler", "collate_objects"]

#: Official minimum object size in a training window (``train.py``: samples with <= 1000 voxels are redrawn).
MIN_VOXELS = 1000


@dataclass
class _Prepared:
    id: str
    image: torch.Tensor  # (1, x, y, z) on the model grid
    labels: torch.Tensor  # (1, x, y, z) label values


def _prepare(case: Case, spacing: float) -> _Prepared:
    labelled = read_labelled_case(case, "a training case")
    model_image = to_model_grid(labelled.image, spacing).as_tensor().float()
    if case.modality and normalize_modality(case.modality) == "ct":
        model_image = clamp_ct(model_image)
    model_labels = to_model_grid(labelled.labels, spacing, mode="nearest").as_tensor().round().to(torch.int16)
    return _Prepared(case.id, model_image, model_labels)


class ObjectWindowSampler:
    """Endless samples ``{'image': (1, S, S, S) z-scored, 'label': (1, S, S, S) 0/1}``.

    Args:
        data: case list (``.jsonl``/``.json``) or an ``input_dict``.
        size: window side (official 128).
        spacing: model grid spacing in mm (official 1.5).
        min_voxels: redraw objects with at most this many voxels in their window (official 1000).
        flip: random flips on each axis with probability 0.5 (official).
        jitter: largest shift of the window away from the object's centre, as a fraction of the window
            (uniform per axis). Not official (0: always centred): with few training scans it stops the model
            from learning where objects sit instead of where the click is.
        image_augmentation: callable on the (1, S, S, S) normalised image (MONAI array transforms), reseeded
            from this sampler's generator before every sample. Not official (none).
        slab_prob: probability of keeping only a slab of the window along its last (inferior-superior) axis,
            of random depth from 1/8 of the window up, through a random voxel of the object; image and label
            are zeroed outside (before normalisation, like the window's own padding). Not official (0): it
            teaches a model trained on whole scans the thin scans whose windows are mostly padding.
        seed, rank: the random stream (``seed + rank`` under distributed training).

    Raises:
        BundleInputError: a case without mask or legend, or no object big enough anywhere.
    """

    def __init__(
        self,
        data: str | PathLike | dict,
        size: int = 128,
        spacing: float = SPACING_MM,
        min_voxels: int = MIN_VOXELS,
        flip: bool = True,
        jitter: float = 0.0,
        image_augmentation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        slab_prob: float = 0.0,
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        input_dict = data if isinstance(data, dict) else {"cases": str(data)}
        cases = parse_cases(input_dict)
        self.cases = [_prepare(c, spacing) for c in cases]
        self.size = size
        self.flip = flip
        self.jitter = jitter
        self.image_augmentation = image_augmentation
        self.slab_prob = slab_prob
        self.rng = np.random.default_rng(seed + rank)
        self.objects: list[tuple[int, int, np.ndarray]] = []  # (case index, label value, window start)
        for i, (case, prepared) in enumerate(zip(cases, self.cases)):
            for value in sorted(case.legend):
                mask = (prepared.labels[0] == value).numpy()
                if not mask.any():
                    continue
                start = box_window_start(mask, size)
                inside = int(crop_window(torch.from_numpy(mask)[None], start, size).sum())
                if inside > min_voxels:
                    self.objects.append((i, value, start))
        if not self.objects:
            raise BundleInputError(
                cases[0].image if cases else str(data),
                f"no object has more than {min_voxels} voxels in its {size}³ window at {spacing} mm; nothing to train on",
            )

    def __iter__(self) -> ObjectWindowSampler:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        case, value, start = self.objects[int(self.rng.integers(len(self.objects)))]
        if self.jitter:
            limit = int(self.jitter * self.size)
            start = start + self.rng.integers(-limit, limit + 1, size=3)
        prepared = self.cases[case]
        image = crop_window(prepared.image, start, self.size)
        label = (crop_window(prepared.labels, start, self.size) == value).float()
        if self.slab_prob and self.rng.random() < self.slab_prob and bool(label.any()):
            image, label = self._slab(image, label)
        if self.flip:
            axes = [1 + a for a in range(3) if self.rng.random() < 0.5]
            if axes:
                image, label = image.flip(axes), label.flip(axes)
        image = znormalize_positive(image)
        reseed((self.image_augmentation,), self.rng)
        if self.image_augmentation is not None:
            image = torch.as_tensor(self.image_augmentation(image)).float()
        return {"image": image, "label": label}

    def _slab(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        depth = int(self.rng.integers(max(self.size // 8, 1), self.size + 1))
        levels = torch.nonzero(label[0].sum(dim=(0, 1))).flatten()
        through = int(levels[int(self.rng.integers(len(levels)))])
        lo = int(np.clip(through - int(self.rng.integers(depth)), 0, self.size - depth))
        keep = torch.zeros(self.size, dtype=torch.bool)
        keep[lo : lo + depth] = True
        return image * keep, label * keep


def collate_objects(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack samples to ``{'image': (B, 1, S, S, S), 'label': (B, 1, S, S, S)}``."""
    return {key: torch.stack([s[key] for s in samples]) for key in ("image", "label")}
