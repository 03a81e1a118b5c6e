"""Training samples for SAM-UNet from an SA-Med2D folder: one image with several of its masks and their prompts.

Per sample (the original ``train_on_multi_gpu.py``): a training image drawn uniformly, ``masks_per_image``
of its masks drawn with replacement (5), each with the box of its largest component shifted by up to
``box_shift`` pixels (5) at the network input's scale. The image is normalised with SAM's mean / std and
framed like SAM (longest side to S, zero padding after normalisation); masks are framed the same way
(nearest). Optionally (not in the original, which prompts with boxes only) a random positive point inside
each mask with probability ``point_prob``, as an extra prompt token; a random zoom (``scale_jitter``: the
image is scaled by a factor in [1 - j, 1 + j] and centred in the input instead of padded at the end) and
intensity augmentation of the 0-255 image (``image_augmentation``), for models trained on few scans.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bundles.errors import BundleInputError
from bundles.inferers.slice_frame import SliceFrame
from bundles.sam_unet.boxes import box_from_mask, jitter_box, random_point
from bundles.sam_unet.preprocessing import normalize
from bundles.sam_unet.sa_med2d import read_index, read_png
from bundles.transforms.reseed import reseed

__all__ = ["BoxPromptSampler", "collate_prompts"]


class BoxPromptSampler:
    """Endless samples ``{'image': (3, S, S), 'masks': (M, 1, S, S), 'boxes': (M, 4), 'points': (M, 1, 2),
    'point_labels': (M, 1)}`` (point label -1 = no point).

    Args:
        data: an SA-Med2D folder (``image2label_train.json``).
        img_size: the network input side S (256).
        masks_per_image: M, drawn with replacement.
        box_shift: largest box-coordinate shift in pixels at S.
        point_prob: probability of adding a positive point prompt to a mask.
        scale_jitter: random zoom range j (0: SAM's framing, as the original).
        image_augmentation: callable on the (3, H, W) 0-255 image (MONAI array transforms), reseeded from this
            sampler's generator before every sample; not in the original.
        seed, rank: the random stream (``seed + rank`` under distributed training).

    Raises:
        BundleInputError: not an SA-Med2D folder, or an image listed without masks.
    """

    def __init__(self, data: str | PathLike, img_size: int = 256, masks_per_image: int = 5, box_shift: float = 5.0,
                 point_prob: float = 0.0, scale_jitter: float = 0.0, image_augmentation: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 seed: int = 0, rank: int = 0) -> None:
        self.folder = Path(data)
        self.items = sorted(read_index(self.folder, "train").items())
        empty = [image for image, masks in self.items if not masks]
        if empty:
            raise BundleInputError(self.folder / empty[0], "listed in image2label_train.json without masks")
        self.frame = SliceFrame(img_size, "longest_side")
        self.size = img_size
        self.masks_per_image = masks_per_image
        self.box_shift = box_shift
        self.point_prob = point_prob
        self.scale_jitter = scale_jitter
        self.image_augmentation = image_augmentation
        self.zoomed = SliceFrame(img_size, "spacing", 1.0)
        self.rng = np.random.default_rng(seed + rank)

    def __iter__(self) -> BoxPromptSampler:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        image_rel, mask_rels = self.items[int(self.rng.integers(len(self.items)))]
        rgb = read_png(self.folder / image_rel)
        rgb = np.repeat(rgb[..., None], 3, axis=-1) if rgb.ndim == 2 else rgb
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float()
        shape = tuple(image.shape[-2:])
        reseed((self.image_augmentation,), self.rng)
        if self.image_augmentation is not None:
            image = torch.as_tensor(self.image_augmentation(image[0])).float().clamp(0, 255)[None]
        chosen = [mask_rels[int(i)] for i in self.rng.integers(len(mask_rels), size=self.masks_per_image)]
        raws = []
        for rel in chosen:
            raw = read_png(self.folder / rel)
            raw = raw[..., 0] if raw.ndim == 3 else raw
            if raw.shape != shape:
                raise BundleInputError(self.folder / rel, f"mask of shape {raw.shape} for an image of shape {shape}")
            if not (raw > 127).any():
                raise BundleInputError(self.folder / rel, "empty mask")
            raws.append(torch.from_numpy((raw > 127).astype(np.float32))[None, None])
        frame, pixel = self.frame, (1.0, 1.0)
        if self.scale_jitter:  # "spacing" framing at 1 px = 1 unit: pixel size f zooms by f, centred
            zoom = self.size / max(shape) * float(self.rng.uniform(1 - self.scale_jitter, 1 + self.scale_jitter))
            zoomed = [self.zoomed.to_network(raw, (zoom, zoom), mode="nearest") for raw in raws]
            if all(bool(m.any()) for m in zoomed):  # else a zoom pushed an object out: keep SAM's framing
                frame, pixel = self.zoomed, (zoom, zoom)
        image = frame.to_network(normalize(image), pixel)[0]
        masks, boxes, points, labels = [], [], [], []
        for raw in raws:
            mask = frame.to_network(raw, pixel, mode="nearest")[0, 0]
            array = mask.numpy() > 0.5
            box = box_from_mask(array)
            boxes.append(jitter_box(box, self.box_shift, self.size, self.rng) if self.box_shift else box)
            with_point = self.point_prob > 0 and self.rng.random() < self.point_prob
            points.append(random_point(array, self.rng) if with_point else np.zeros(2, np.float32))
            labels.append(1 if with_point else -1)
            masks.append(mask[None])
        return {
            "image": image,
            "masks": torch.stack(masks),
            "boxes": torch.from_numpy(np.stack(boxes)),
            "points": torch.from_numpy(np.stack(points))[:, None],
            "point_labels": torch.tensor(labels)[:, None],
        }


def collate_prompts(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack samples: image (B, 3, S, S), masks (B, M, 1, S, S), boxes (B, M, 4), points (B, M, 1, 2), point_labels (B, M, 1)."""
    return {key: torch.stack([s[key] for s in samples]) for key in ("image", "masks", "boxes", "points", "point_labels")}
