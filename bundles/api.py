"""The short Python API: one call segments a scan with a bundle, exactly as ``python -m monai.bundle run``.

    from bundles.api import segment
    segment("ct.nii.gz", "out", prompts=["liver", "spleen"])                       # official SAT-Nano weights
    segment("dicom_folder/", "out", prompts=["liver"], model_dir="runs/train/model")  # a model trained here

It runs the bundle's own ``configs/inference.json`` (the same job, checks and outputs as the command line),
adding the overlays a trained model folder names in its ``training.json`` (e.g. ``configs/demo.json``), so a
model always runs with the network settings it was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import bundles
from bundles.checkpoints.model_card import CARD_NAME, model_overlays, read_model_card
from bundles.errors import ConfigurationError

__all__ = ["BUNDLES", "bundle_dir", "inference_configs", "segment"]

#: The bundle folders this package drives (beside the package in the repository).
BUNDLES = ("sat_nano", "sat_pro")

def bundle_dir(bundle: str) -> Path:
    """The folder of a bundle (``sat_nano``, ...).

    Raises:
        ConfigurationError: unknown bundle, or its folder is missing (a wheel install without the repository).
    """
    if bundle not in BUNDLES:
        raise ConfigurationError(f"unknown bundle {bundle!r}; choose one of {', '.join(BUNDLES)}")
    folder = Path(bundles.__file__).resolve().parent.parent / bundle
    if not (folder / "configs" / "inference.json").is_file():
        raise ConfigurationError(f"{folder}: bundle folder not found; install the repository with pip install -e .")
    return folder


def inference_configs(bundle: str, model_dir: str | PathLike | None) -> list[str]:
    """``configs/inference.json`` of ``bundle`` plus the overlays recorded in ``<model_dir>/training.json``."""
    root = bundle_dir(bundle)
    configs = [str(root / "configs" / "inference.json")]
    for name in model_overlays(read_model_card(model_dir) if model_dir is not None else None):
        path = Path(name) if Path(name).is_absolute() else root / name
        if not path.is_file():
            raise ConfigurationError(f"{Path(model_dir) / CARD_NAME}: names the config {name}, which is not in {root}")
        configs.append(str(path))
    return configs


def segment(
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
        prompts: vocabulary terms (``liver``), TotalSegmentator names (``kidney_left``) or abbreviations (``IVC``).
        modality: ``ct``, ``mri`` or ``pet``.
        bundle: ``sat_nano`` or ``sat_pro``.
        model_dir: the weights folder (default: the bundle's ``models/``, where converted official weights go).
        device: ``auto``, ``cpu`` or ``cuda:N``.
        options: any other config id of ``configs/inference.json`` (``dicom_seg=True``, ``skip_existing=True``,
            ``keep_largest_component=True``, ``sw_batch_size=2``, ...).

    Returns:
        ``output_dir``.

    Raises:
        BundleError: bad input, prompts, weights or settings, before any model work where possible.
    """
    from monai.bundle import run

    images = [str(p) for p in image] if isinstance(image, (list, tuple)) else str(image)
    root = bundle_dir(bundle)
    settings: dict[str, Any] = {"bundle_root": str(root), "output_dir": str(output_dir), "device": device}
    if model_dir is not None:
        settings["model_dir"] = str(Path(model_dir).resolve())
    settings["input_dict"] = {"image": images, "prompts": list(prompts), "modality": modality}
    run(config_file=inference_configs(bundle, settings.get("model_dir")), **settings, **options)
    return Path(output_dir)
