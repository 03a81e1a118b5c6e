"""SAT's one-call Python API (the family's defaults over :func:`bundles.segment`): the same job as the bundle's
``configs/inference.json``, from Python.

    from bundles.sat import segment, segment_to_folder
    masks, grid = segment("ct.nii.gz", ["liver", "spleen"])                  # official SAT-Nano weights
    masks, grid = segment("dicom_folder/", ["liver"], model_dir="runs/train/model")  # a model trained here
    segment_to_folder("ct.nii.gz", "out", ["liver", "spleen"])               # files, as the command line writes

``segment`` returns the masks in memory, on the input's own grid; ``segment_to_folder`` runs the whole job
(NIfTI, per-prompt masks, legend, DICOM-SEG for DICOM input). Both take the bundle's own configs
(:mod:`bundles.bundle_configs`), so the checks, preprocessing and predictor are those of the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from bundles.bundle_configs import run_inference
from bundles.io.grid import ImageGrid

__all__ = ["segment", "segment_to_folder"]


def segment(
    image: str | PathLike,
    prompts: Sequence[str],
    modality: str = "ct",
    *,
    bundle: str = "sat_nano",
    model_dir: str | PathLike | None = None,
    device: str = "auto",
    **options: Any,
) -> tuple[np.ndarray, ImageGrid]:
    """Segment one image with text ``prompts``; return the masks on the input's own grid.

    Args:
        image: a NIfTI/NRRD/MHA file or a DICOM series folder.
        prompts: vocabulary terms (``liver``), TotalSegmentator names (``kidney_left``) or abbreviations (``IVC``).
        modality: ``ct``, ``mri`` or ``pet``.
        bundle: ``sat_nano`` or ``sat_pro``.
        model_dir: the weights folder (default: the bundle's ``models/``, where converted official weights go).
        device: ``auto``, ``cpu`` or ``cuda:N``.
        options: other config ids of ``configs/inference.json`` (``keep_largest_component=True``, ...).

    Returns:
        ``(masks, grid)``: bool masks ``(len(prompts), *grid.shape)`` in the order of ``prompts``, and the
        input's grid (shape, affine) they lie on.

    Raises:
        BundleError: bad input, prompts, weights or settings, before any model work where possible.
    """
    from bundles.api import segment as segment_any

    masks, _, grid = segment_any(bundle, image, model_dir=model_dir, device=device, settings=options, prompts=list(prompts),
                                 modality=modality)
    return masks, grid


def segment_to_folder(
    image: str | PathLike | Sequence[str | PathLike],
    output_dir: str | PathLike,
    prompts: Sequence[str],
    *,
    modality: str = "ct",
    bundle: str = "sat_nano",
    model_dir: str | PathLike | None = None,
    device: str = "auto",
    **options: Any,
) -> Path:
    """Segment ``image`` with text ``prompts`` and write the outputs under ``output_dir/<case id>/``.

    Args:
        image: a NIfTI/NRRD/MHA file, a DICOM series folder, a folder of image files, or a list of these.
        output_dir: receives one folder per case (``seg.nii.gz`` on the input's grid, ``masks/``,
            ``legend.json`` with volumes in mL, and ``seg.dcm`` for DICOM input).
        prompts, modality, bundle, model_dir, device: as for :func:`segment`.
        options: any other config id of ``configs/inference.json`` (``dicom_seg=True``, ``skip_existing=True``,
            ``keep_largest_component=True``, ``sw_batch_size=2``, ...).

    Returns:
        ``output_dir``.

    Raises:
        BundleError: bad input, prompts, weights or settings, before any model work where possible.
    """
    images = [str(p) for p in image] if isinstance(image, (list, tuple)) else str(image)
    input_dict = {"image": images, "prompts": list(prompts), "modality": modality}
    run_inference(bundle, model_dir, output_dir=str(output_dir), device=device, input_dict=input_dict, **options)
    return Path(output_dir)
