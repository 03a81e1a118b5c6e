"""Training crops for text-prompted segmentation, sampled the SAT way (official SAT train.py).

Each case of a dataset list (``.jsonl``: ``image``, ``mask`` (a label map), ``legend`` (label value ->
term), ``modality``, ``dataset``) is read once, preprocessed exactly as at inference
(:class:`~bundles.sat.preprocessing.SATPreprocessing`) and kept in memory. Each sample is a crop
of ``roi_size`` centred (with jitter) on a random voxel of a random label present in the case; the queries
are the labels present in the crop (at most ``max_queries``, dropping those that fill the whole crop) plus
up to ``neg_ratio`` times as many labels of the case that are absent from the crop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from os import PathLike

import numpy as np
import torch

from bundles.errors import BundleInputError
from bundles.io.cases import Case, parse_cases
from bundles.io.labelled_case import check_labelled, read_labelled_case
from bundles.io.modality import normalize_modality
from bundles.io.reference_masks import values_by_term
from bundles.sat.preprocessing import SATPreprocessing
from bundles.transforms.reseed import reseed
from bundles.transforms.window_crop import crop_window

__all__ = ["PreparedCase", "TextPromptedCropSampler", "collate_text_prompted"]


@dataclass
class PreparedCase:
    """A preprocessed training case: image ``(1, x, y, z)`` float32, label map ``(x, y, z)`` int16."""

    id: str
    image: torch.Tensor
    labels: np.ndarray
    values_of: dict[str, list[int]]
    modality: str
    dataset: str


def prepare_case(case: Case, preprocessing: SATPreprocessing) -> PreparedCase:
    """Read ``case`` (image + label map), put the map on the image grid, preprocess both."""
    check_labelled(case, "a training case")
    if case.modality is None:
        raise BundleInputError(case.image, "a training case needs 'modality' ('ct', 'mri' or 'pet'): SAT embeds it with the text")
    labelled = read_labelled_case(case, "a training case")
    modality = normalize_modality(case.modality)
    pre_image, pre_labels = preprocessing(labelled.image, modality, labelled.labels)
    return PreparedCase(
        case.id, pre_image.as_tensor().float(), pre_labels[0].as_tensor().numpy().astype(np.int16), values_by_term(case.legend), modality,
        case.dataset or "-",
    )


def _crop_window(center: np.ndarray, shape: Sequence[int], roi: Sequence[int], jitter: np.ndarray) -> list[int]:
    starts = []
    for c, size, r, j in zip(center, shape, roi, jitter):
        if size <= r:
            starts.append(-((r - size) // 2))
        else:
            starts.append(int(np.clip(c - r // 2 + j, 0, size - r)))
    return starts


class TextPromptedCropSampler:
    """An endless iterator of training samples ``{'image', 'target', 'terms', 'modality'}``.

    Args:
        data: dataset list (``.jsonl``/``.json``) or an ``input_dict`` (see :mod:`bundles.io.cases`).
        roi_size: crop size in voxels of the preprocessed grid (official training crop 288x288x64).
        preprocessing: the same preprocessing as at inference.
        max_queries: at most this many positive labels per crop (official 32).
        neg_ratio: negatives per positive (official 0.5).
        jitter: maximum shift of the crop centre away from the sampled voxel, as a fraction of the crop.
        image_augmentation: callable applied to the ``(1, *roi)`` image crop (MONAI array transforms).
        spatial_augmentation: callable applied to ``{'image', 'label'}`` crops (e.g. ``RandZoomd``).
            MONAI random transforms keep a random state of their own that ``set_determinism`` does not
            touch; before every sample both augmentations are reseeded from this sampler's generator, so
            the sample stream depends on ``seed`` alone and resumes exactly from a checkpoint.
        slab_prob: probability of keeping only a random slab along the last axis (the rest zeroed in image
            and labels), which teaches the model thin scans padded to the window.
        seed: random seed (offset by ``rank`` under distributed training).
    """

    def __init__(
        self,
        data: str | PathLike | dict,
        roi_size: Sequence[int],
        preprocessing: SATPreprocessing,
        *,
        max_queries: int = 32,
        neg_ratio: float = 0.5,
        jitter: float = 0.25,
        image_augmentation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        spatial_augmentation: Callable[[dict], dict] | None = None,
        slab_prob: float = 0.0,
        seed: int = 0,
        rank: int = 0,
    ):
        input_dict = data if isinstance(data, dict) else {"cases": str(data)}
        self.cases = [prepare_case(c, preprocessing) for c in parse_cases(input_dict)]
        self.roi = tuple(int(r) for r in roi_size)
        self.max_queries = max_queries
        self.neg_ratio = neg_ratio
        self.jitter = jitter
        self.image_augmentation = image_augmentation
        self.spatial_augmentation = spatial_augmentation
        self.slab_prob = slab_prob
        self.rng = np.random.default_rng(seed + rank)
        self._voxels = [self._index_voxels(c) for c in self.cases]
        sizes: dict[str, int] = {}
        for c in self.cases:
            sizes[c.dataset] = sizes.get(c.dataset, 0) + 1
        weights = np.array([1.0 / math.sqrt(sizes[c.dataset]) for c in self.cases])
        self.case_weights = weights / weights.sum()

    @staticmethod
    def _index_voxels(case: PreparedCase) -> dict[str, np.ndarray]:
        present = {}
        for term, values in case.values_of.items():
            idx = np.argwhere(np.isin(case.labels, values))
            if len(idx):
                present[term] = idx
        if not present:
            raise BundleInputError(case.id, "none of the legend's labels occurs in the mask")
        return present

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        i = int(self.rng.choice(len(self.cases), p=self.case_weights))
        case, voxels = self.cases[i], self._voxels[i]
        term = list(voxels)[int(self.rng.integers(len(voxels)))]
        center = voxels[term][int(self.rng.integers(len(voxels[term])))]
        jitter = (self.rng.uniform(-1, 1, 3) * self.jitter * np.array(self.roi)).astype(int)
        starts = _crop_window(center, case.labels.shape, self.roi, jitter)
        image = torch.from_numpy(crop_window(case.image.numpy(), starts, self.roi))
        labels = torch.from_numpy(crop_window(case.labels, starts, self.roi).astype(np.float32))[None]
        reseed((self.spatial_augmentation, self.image_augmentation), self.rng)
        if self.spatial_augmentation is not None:
            out = self.spatial_augmentation({"image": image, "label": labels})
            image, labels = torch.as_tensor(out["image"]), torch.as_tensor(out["label"]).round()
        if self.slab_prob and self.rng.random() < self.slab_prob:
            depth = self.roi[-1]
            keep = int(self.rng.integers(max(depth // 4, 1), depth + 1))
            lo = int(self.rng.integers(0, depth - keep + 1))
            image[..., :lo] = 0
            image[..., lo + keep :] = 0
            labels[..., :lo] = 0
            labels[..., lo + keep :] = 0
        if self.image_augmentation is not None:
            image = torch.as_tensor(self.image_augmentation(image))
        return self._queries(case, image.float(), labels[0].numpy().astype(np.int16))

    def _queries(self, case: PreparedCase, image: torch.Tensor, labels: np.ndarray) -> dict:
        crop_voxels = labels.size
        positives, negatives = [], []
        for term, values in case.values_of.items():
            count = int(np.isin(labels, values).sum())
            if count == 0:
                negatives.append(term)
            elif count < crop_voxels:
                positives.append(term)
        self.rng.shuffle(positives)
        positives = positives[: self.max_queries]
        self.rng.shuffle(negatives)
        negatives = negatives[: int(math.ceil(self.neg_ratio * max(len(positives), 1)))]
        terms = positives + negatives
        target = np.stack([np.isin(labels, case.values_of[t]) for t in terms]).astype(np.uint8)
        return {"image": image, "target": torch.from_numpy(target), "terms": terms, "modality": case.modality}


def collate_text_prompted(samples: Sequence[dict]) -> dict:
    """Stack samples; queries are padded to the largest count with the term ``'none'`` and ``query_mask`` 0
    (as the official batch assembly). Returns ``image`` (B, 1, *roi), ``target`` (B, Q, *roi) uint8,
    ``query_mask`` (B, Q), ``terms`` (B lists of Q strings), ``modality`` (B strings)."""
    q = max(len(s["terms"]) for s in samples)
    roi = samples[0]["image"].shape[1:]
    target = torch.zeros((len(samples), q, *roi), dtype=torch.uint8)
    query_mask = torch.zeros((len(samples), q))
    terms = []
    for b, s in enumerate(samples):
        n = len(s["terms"])
        target[b, :n] = s["target"]
        query_mask[b, :n] = 1
        terms.append(list(s["terms"]) + ["none"] * (q - n))
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "target": target,
        "query_mask": query_mask,
        "terms": terms,
        "modality": [s["modality"] for s in samples],
    }
