"""SAM-UNet's short Python API (the family's defaults over :func:`bundles.segment`): segment objects given by
boxes or points, with the bundle's inference config.

    from bundles.sam_unet import segment

    folder = segment("ct.nii.gz", [{"name": "liver", "box": [104, 190, 0, 281, 374, 19]}], "out/",
                     model_dir="demo_output/sam_unet/model")

Boxes ``[i0, j0, k0, i1, j1, k1]`` and points ``[[i, j, k], ...]`` (with ``point_labels``) are voxel indices
of the input image (see :mod:`bundles.sam_unet.prompts`). Writes ``<output_dir>/<case>/seg.nii.gz``,
``masks/<name>.nii.gz`` and ``legend.json`` on the input grid, exactly as ``python -m monai.bundle run
--config_file configs/inference.json`` does (plus the overlays a trained model records in its ``training.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["segment"]


def segment(image: str | PathLike, objects: Sequence[dict[str, Any]], output_dir: str | PathLike, model_dir: str | PathLike | None = None,
            *, modality: str | None = "ct", device: str = "auto", **options: Any) -> Path:
    """Segment each prompted object of ``image`` into ``output_dir``.

    Args:
        image: the scan (NIfTI, NRRD/MHA, DICOM series folder, or a 2D NIfTI).
        objects: ``[{'name': ..., 'box': [...]}, {'name': ..., 'points': [...], 'point_labels': [...]}]``.
        output_dir: where the case folder goes.
        model_dir: folder with ``model.pt`` (default: the bundle's ``models/``).
        modality: "ct" (soft-tissue window) or another modality (percentile scaling).
        device: ``auto``, ``cpu`` or ``cuda:N``.
        options: other config ids of ``configs/inference.json``.

    Returns:
        The case's output folder.

    Raises:
        PromptError, BundleInputError, CheckpointError: bad prompts, unreadable image, missing weights (named).
    """
    from bundles.api import segment as segment_any
    from bundles.io.cases import parse_cases

    fields = {"objects": list(objects), **({"modality": modality} if modality else {})}
    (case,) = parse_cases({"image": str(image), **fields})
    segment_any("sam_unet", image, output_dir, model_dir=model_dir, device=device, settings=options, **fields)
    return Path(output_dir) / case.id
