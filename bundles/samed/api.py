"""SAMed's short Python API (the family's defaults over :func:`bundles.segment`): segment a CT with the
bundle's own inference config.

    from bundles.samed import segment

    folder = segment("ct.nii.gz", "out/")                 # converted official weights in samed_lora/models
    folder = segment("dicom_series/", "out/", model_dir="demo_output/samed/model")   # a model trained here

Writes ``<output_dir>/<case>/seg.nii.gz`` (labels 1..8 on the input grid), ``masks/<organ>.nii.gz`` and
``legend.json``, exactly as ``python -m monai.bundle run --config_file configs/inference.json`` does (plus
the overlays a trained model records in its ``training.json``).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["segment"]


def segment(image: str | PathLike, output_dir: str | PathLike, model_dir: str | PathLike | None = None, *, device: str = "auto",
            **options: Any) -> Path:
    """Segment SAMed's organs in ``image`` (NIfTI, NRRD/MHA, DICOM series folder, or a 2D NIfTI) into ``output_dir``.

    Args:
        image: the scan.
        output_dir: where the case folder goes.
        model_dir: folder with ``model.pt`` (default: the bundle's ``models/``).
        device: ``auto``, ``cpu`` or ``cuda:N``.
        options: other config ids of ``configs/inference.json`` (``batch_size=16``, ``skip_outside_body=True``, ...).

    Returns:
        The case's output folder.

    Raises:
        BundleInputError, CheckpointError: unreadable image, missing or non-matching weights (named).
    """
    from bundles.api import segment as segment_any
    from bundles.io.cases import parse_cases

    (case,) = parse_cases({"image": str(image)})
    segment_any("samed_lora", image, output_dir, model_dir=model_dir, device=device, settings=options)
    return Path(output_dir) / case.id
