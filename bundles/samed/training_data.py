"""Training slices for SAMed: random axial slices of labelled CT volumes with SAMed's augmentation.

Data is the case list every bundle trains from (``.jsonl`` of ``{'image', 'mask', 'legend', 'modality'}``):
``legend`` maps the label map's values to names, and ``class_names`` (the bundle's) maps names to output
channels 1..K, so any label map trains any class order; values whose name is not a class are background.
Volumes are cut into axial slices on their own grid (:class:`~bundles.inferers.axial_slices.AxialSlices`),
scaled with SAMed's HU window and kept in memory.

Each sample (SAMed ``datasets/dataset_synapse.py`` ``RandomGenerator``): a slice drawn uniformly from all
slices (SAMed trains on every slice of its volumes), then with probability 0.5 a random rot90 (k in 0..3)
and a flip along a random axis, otherwise with probability 0.5 a rotation by an integer angle in [-20, 20)
degrees (nearest-neighbour for image and label, same shape); the image brought to the network input as
inference does (:class:`~bundles.inferers.slice_frame.SliceFrame`, bilinear), the label the same way
(nearest) and to the decoder's low-res grid (nearest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from bundles.errors import BundleInputError, ConfigurationError
from bundles.inferers.axial_slices import AxialSlices
from bundles.inferers.slice_frame import SliceFrame
from bundles.io.cases import parse_cases
from bundles.io.labelled_case import read_labelled_case
from bundles.samed.preprocessing import scale_ct
from bundles.transforms.reseed import reseed

__all__ = ["SliceSampler", "collate_slices", "ROTATION_DEGREES"]

#: Range of the small rotations (SAMed ``random_rotate``: ``np.random.randint(-20, 20)``).
ROTATION_DEGREES = (-20, 20)


class SliceSampler:
    """Endless samples ``{'image': (3, S, S) in [0, 1], 'label': (1, S, S), 'low_res_label': (1, L, L)}``.

    Args:
        data: case list (``.jsonl``/``.json``) or an ``input_dict`` with ``cases``.
        img_size: the network input side S.
        class_names: output channels 1..K by name.
        augment: SAMed's rotations and flips (off for a plain stream).
        slice_spacing: ``None`` (SAMed: slices resized to the input) or the pixel size in mm they are
            resampled to (the same as the inference config's).
        low_res_size: side of the decoder's logits the loss compares with (the network's ``low_res_size``).
        foreground_prob: probability of drawing among the slices that hold any class (``None``: uniform over
            all slices, SAMed). Not official: with one training scan most slices hold little.
        scale_jitter: with ``slice_spacing``, the pixel size is scaled by a factor uniform in
            [1 - scale_jitter, 1 + scale_jitter] (a random zoom). Not official.
        translate: a random shift of up to ``translate`` pixels of the network input along each axis (zero
            fill), drawn per sample: the anatomy's place in the frame varies between patients (on the shipped
            scans, patient B's liver sits 12 pixels (42 mm) further back than A's at 3.5 mm pixels). Not official.
        image_augmentation: callable on the scaled (1, H, W) slice (MONAI array transforms), reseeded from
            this sampler's generator before every sample. Not official.
        seed, rank: the random stream (``seed + rank`` under distributed training).

    Raises:
        BundleInputError: a case without mask or legend, or no slice with any class anywhere.
        ConfigurationError: ``class_names`` empty or repeated; ``translate`` negative or not below ``img_size``.
    """

    def __init__(
        self,
        data: str | PathLike | dict,
        img_size: int,
        class_names: Sequence[str],
        augment: bool = True,
        slice_spacing: float | None = None,
        low_res_size: int | None = None,
        foreground_prob: float | None = None,
        scale_jitter: float = 0.0,
        translate: int = 0,
        image_augmentation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        if not class_names or len(set(class_names)) != len(class_names):
            raise ConfigurationError(f"class_names must list distinct names, got {list(class_names)}")
        if not 0 <= translate < img_size:
            raise ConfigurationError(f"translate must be 0 (off) or a shift in pixels below img_size {img_size}, got {translate}")
        self.img_size = img_size
        self.frame = SliceFrame(img_size, "stretch" if slice_spacing is None else "spacing", slice_spacing)
        self.low_res_size = low_res_size or img_size // 4
        self.foreground_prob = foreground_prob
        self.scale_jitter = scale_jitter
        self.translate = translate
        self.image_augmentation = image_augmentation
        self.augment = augment
        self.rng = np.random.default_rng(seed + rank)
        channel = {name: k for k, name in enumerate(class_names, start=1)}
        self.images: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.pixel_mm: list[tuple[float, float]] = []
        cases = parse_cases(data if isinstance(data, dict) else {"cases": str(data)})
        for case in cases:
            labelled = read_labelled_case(case, "a training case")
            values = labelled.labels.as_tensor()[0].to(torch.int64)
            label = torch.zeros_like(values)
            for value, name in case.legend.items():
                if name in channel:
                    label[values == int(value)] = channel[name]
            slices = AxialSlices(scale_ct(labelled.image.as_tensor()), labelled.grid.affine)
            self.images.append(slices.slices[0])
            self.pixel_mm.append(slices.pixel_mm)
            self.labels.append(AxialSlices(label[None].float(), labelled.grid.affine).slices[0].round().to(torch.int64))
        if not any(bool(label.any()) for label in self.labels):
            raise BundleInputError(
                cases[0].mask if cases else str(data),
                f"no voxel of any class {list(class_names)} in the masks on their images' grids; nothing to train on (check"
                " each case's legend values, and that each mask covers its image: masks are matched to images in world coordinates)",
            )
        self.slices = [(c, s) for c, image in enumerate(self.images) for s in range(image.shape[-1])]
        self.foreground = [(c, s) for c, s in self.slices if bool(self.labels[c][..., s].any())]

    def __iter__(self) -> SliceSampler:
        return self

    def _augment(
        self, image: np.ndarray, label: np.ndarray, pixel_mm: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        if self.rng.random() > 0.5:
            k = int(self.rng.integers(4))
            image, label = np.rot90(image, k), np.rot90(label, k)
            pixel_mm = pixel_mm[::-1] if k % 2 else pixel_mm
            axis = int(self.rng.integers(2))
            image, label = np.flip(image, axis), np.flip(label, axis)
        elif self.rng.random() > 0.5:
            angle = int(self.rng.integers(*ROTATION_DEGREES))
            image = ndimage.rotate(image, angle, order=0, reshape=False)
            label = ndimage.rotate(label, angle, order=0, reshape=False)
        return np.ascontiguousarray(image), np.ascontiguousarray(label), pixel_mm

    def __next__(self) -> dict[str, torch.Tensor]:
        pool = self.slices
        if self.foreground_prob is not None:
            pool = self.foreground if self.rng.random() < self.foreground_prob else self.slices
        case, s = pool[int(self.rng.integers(len(pool)))]
        image, label = self.images[case][..., s].numpy(), self.labels[case][..., s].numpy()
        pixel_mm = self.pixel_mm[case]
        if self.augment:
            image, label, pixel_mm = self._augment(image, label, pixel_mm)
        if self.scale_jitter:
            zoom = float(self.rng.uniform(1 - self.scale_jitter, 1 + self.scale_jitter))
            pixel_mm = (pixel_mm[0] * zoom, pixel_mm[1] * zoom)
        reseed((self.image_augmentation,), self.rng)
        if self.image_augmentation is not None:
            image = np.asarray(self.image_augmentation(torch.from_numpy(image.copy())[None]), dtype=np.float32)[0]
        low = self.low_res_size
        image_t = self.frame.to_network(torch.from_numpy(image).float()[None, None], pixel_mm)[0]
        label_t = self.frame.to_network(torch.from_numpy(label).float()[None, None], pixel_mm, mode="nearest")
        if self.translate:
            dy, dx = (int(v) for v in self.rng.integers(-self.translate, self.translate + 1, size=2))
            image_t, label_t = _shifted(image_t, dy, dx), _shifted(label_t, dy, dx)
        return {
            "image": image_t.expand(3, -1, -1).contiguous(),
            "label": label_t[0].long(),
            "low_res_label": F.interpolate(label_t, size=(low, low), mode="nearest")[0].long(),
        }


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (..., H, W) moved by ``dy`` rows and ``dx`` columns (down / right when positive), zeros where it
    leaves the frame; same shape."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top:top + height, left:left + width]


def collate_slices(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack samples to ``{'image': (B, 3, S, S), 'label': (B, 1, S, S), 'low_res_label': (B, 1, S/4, S/4)}``."""
    return {key: torch.stack([s[key] for s in samples]) for key in ("image", "label", "low_res_label")}
