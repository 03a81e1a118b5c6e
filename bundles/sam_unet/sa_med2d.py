"""The SA-Med2D dataset layout SAM-UNet trains on, and writing it from 3D volumes with label maps.

Layout (SA-Med2D-20M, which the original SAM-UNet trains on):
- ``images/<name>.png``: 8-bit RGB slices;
- ``masks/<name>--<class>_<instance>.png``: one binary (0/255) mask per object of a slice;
- ``image2label_train.json``: ``{"images/<name>.png": ["masks/...png", ...]}`` (training);
- ``label2image_test.json``: ``{"masks/...png": "images/<name>.png"}`` (testing: one mask per prompt).
Paths are relative to the dataset folder.

:func:`write_sa_med2d` cuts volumes into axial slices on their own grid
(:class:`~bundles.inferers.axial_slices.AxialSlices`: the radiological display orientation of SA-Med2D's
images, so a PNG shows the patient's right on the left and anterior at the top), keeps the slices where an object covers more than
``min_fraction`` of the slice (the original converters keep components above 100 / 256² of the image),
windows them to 8 bit (:func:`~bundles.sam_unet.preprocessing.to_uint8`) and writes every file atomically.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bundles.errors import BundleInputError
from bundles.inferers.axial_slices import AxialSlices
from bundles.io.atomic import atomic_write, atomic_write_json
from bundles.io.cases import parse_cases
from bundles.io.labelled_case import check_labelled, read_labelled_case
from bundles.io.validation import check_exists
from bundles.sam_unet.preprocessing import to_uint8

__all__ = ["TRAIN_INDEX", "TEST_INDEX", "MIN_FRACTION", "write_sa_med2d", "read_index", "read_png", "mask_class"]

TRAIN_INDEX = "image2label_train.json"
TEST_INDEX = "label2image_test.json"
#: Smallest object kept, as a fraction of the slice (original converters: 100 pixels of a 256 x 256 image).
MIN_FRACTION = 100 / 256**2


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()


def mask_class(mask_path: str) -> str:
    """The class slug of a mask file name (``...--<class>_<instance>.png``)."""
    return Path(mask_path).stem.rsplit("--", 1)[-1].rsplit("_", 1)[0]


def _write_png(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    data = buffer.getvalue()
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_sa_med2d(data: str | PathLike | Mapping[str, Any], output_dir: str | PathLike, split: str = "train",
                   min_fraction: float = MIN_FRACTION, modality: str = "ct") -> dict[str, int]:
    """Volumes + label maps (a case list with ``image``, ``mask``, ``legend``, ``modality``) -> SA-Med2D layout.

    Args:
        data: case list file (``.jsonl``/``.json``) or an ``input_dict``.
        output_dir: the dataset folder (created; an existing index of the same split is merged).
        split: "train" (writes ``image2label_train.json``) or "test" (``label2image_test.json``).
        min_fraction: objects covering at most this fraction of a slice are left out.
        modality: of cases that give none (as SAM-UNet's inference config: "ct").

    Returns:
        Counts: ``images``, ``masks``.

    Raises:
        BundleInputError: a case without mask or legend, or no object big enough in any slice.
    """
    out = Path(output_dir)
    input_dict = dict(data) if isinstance(data, Mapping) else {"cases": str(data)}
    index_path = out / (TRAIN_INDEX if split == "train" else TEST_INDEX)
    index: dict[str, Any] = json.loads(index_path.read_text()) if index_path.is_file() else {}
    counts = {"images": 0, "masks": 0}
    cases = parse_cases(input_dict)
    for case in cases:  # every file checked before anything is written
        check_labelled(case, "converting to SA-Med2D")
        check_exists(case.image)
        check_exists(case.mask)
    for case in cases:
        labelled = read_labelled_case(case, "converting to SA-Med2D")
        pixels = to_uint8(labelled.image.as_tensor(), case.modality or modality)
        slices = AxialSlices(pixels.float(), labelled.grid.affine).slices[0].round().to(torch.uint8).numpy()
        label_slices = AxialSlices(labelled.labels.as_tensor(), labelled.grid.affine).slices[0].round().to(torch.int64).numpy()
        for s in range(slices.shape[-1]):
            name = f"{_slug(case.id)}--s{s:04d}"
            masks = []
            for value, label_name in sorted(case.legend.items()):
                mask = label_slices[..., s] == int(value)
                if mask.sum() > min_fraction * mask.size:
                    masks.append((f"masks/{name}--{_slug(label_name)}_000.png", mask))
            if not masks:
                continue
            image_rel = f"images/{name}.png"
            _write_png(out / image_rel, np.repeat(slices[..., s, None], 3, axis=-1))
            for rel, mask in masks:
                _write_png(out / rel, (mask * 255).astype(np.uint8))
            if split == "train":
                index[image_rel] = [rel for rel, _ in masks]
            else:
                index.update({rel: image_rel for rel, _ in masks})
            counts["images"] += 1
            counts["masks"] += len(masks)
    if not counts["masks"]:
        raise BundleInputError(str(data), f"no object covers more than {min_fraction:.4f} of any axial slice; nothing written")
    atomic_write_json(index_path, index)
    return counts


def read_index(folder: str | PathLike, split: str = "train") -> dict[str, Any]:
    """The split's index of an SA-Med2D folder.

    Raises:
        BundleInputError: no index file, or it is not a JSON object.
    """
    folder = Path(folder)
    path = folder / (TRAIN_INDEX if split == "train" else TEST_INDEX)
    wanted = f"SAM-UNet reads an SA-Med2D folder ({path.name}, images/, masks/); make one from volumes with tools.convert_to_sa_med2d"
    if not folder.is_dir():
        raise BundleInputError(folder, f"{'is a file, not a folder' if folder.exists() else 'not found'}: {wanted}")
    if not path.is_file():
        raise BundleInputError(folder, f"not an SA-Med2D dataset folder ({path.name} is missing): {wanted}")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BundleInputError(path, f"unreadable JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(index, dict) or not index:
        raise BundleInputError(path, "expected a non-empty JSON object")
    return index


def read_png(path: str | PathLike) -> np.ndarray:
    """A PNG as a uint8 array (H, W) or (H, W, 3).

    Raises:
        BundleInputError: missing or unreadable file.
    """
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    except (OSError, ValueError) as e:
        raise BundleInputError(path, f"unreadable image ({e})") from e
