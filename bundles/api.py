"""One Python entry point for every bundle, whatever its family (as TotalSegmentator's one call):

    import bundles
    masks, names, grid = bundles.segment("sat_nano", "ct.nii.gz", prompts=["liver", "spleen"])
    masks, names, grid = bundles.segment("samed_lora", "ct.nii.gz", model_dir="demo_output/samed/model")
    masks, names, grid = bundles.segment("sam_unet", "ct.nii.gz", objects=[{"name": "liver", "box": [104, 190, 0, 281, 374, 19]}])
    masks, names, grid = bundles.segment("sam_med3d", "ct.nii.gz", points=[[210, 180, 40]], point_labels=[1], name="liver")
    folder = bundles.segment("sat_nano", "dicom_series/", "out/", prompts=["liver"])    # the usual files instead
    session = bundles.open_session("sam_med3d")                                        # click by click

The prompts are the bundle's case fields, exactly as its ``configs/inference.json`` takes them in ``input_dict``
(SAT ``prompts`` + ``modality``; SAM-Med3D ``points`` + ``point_labels`` (+ ``name``) or ``objects``, voxel
indices or, with ``points_space="world"``, RAS millimetres; SAM-UNet ``objects`` with ``box`` and/or
``points``; SAMed none); each bundle's own prompt check validates them before any model loads.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bundles.errors import ConfigurationError
from bundles.io.grid import ImageGrid

if TYPE_CHECKING:
    from bundles.interactive.session import ClickSession

__all__ = ["segment", "open_session"]


#: Case fields every bundle takes, and those of each declared prompt kind (``bundle_declarations.PROMPT_KINDS``).
COMMON_FIELDS = frozenset({"id", "frame", "series_uid", "modality", "mask", "legend", "dataset"})
KIND_FIELDS = {"text": {"prompts"}, "clicks": {"points", "point_labels", "name", "objects", "points_space"},
               "boxes": {"objects", "box", "name", "points_space", "boxes_from_mask"}}


def _check_prompt_fields(bundle: str, prompts: Mapping[str, Any]) -> None:
    """Refuse a keyword that is no case field of ``bundle`` (a typo such as ``prompt=`` would otherwise be
    ignored and the run would say "no prompts given").

    Raises:
        ConfigurationError: naming the keyword and the fields the bundle takes.
    """
    from bundles.bundle_declarations import declaration

    allowed = set(COMMON_FIELDS).union(*(KIND_FIELDS[k] for k in declaration(bundle).prompt_kinds))
    unknown = sorted(set(prompts) - allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigurationError(f"{bundle}: {', '.join(unknown)} is no case field of this bundle (it takes "
                                 f"{', '.join(sorted(allowed))}; settings go in settings={{...}}){hint}")


def segment(bundle: str, image: str | PathLike | Sequence[str | PathLike], output_dir: str | PathLike | None = None, *,
            model_dir: str | PathLike | None = None,
            device: str = "auto", settings: Mapping[str, Any] | None = None,
            **prompts: Any) -> tuple[np.ndarray, list[str], ImageGrid] | Path:
    """Segment ``image`` with ``bundle``.

    Args:
        bundle: a bundle folder name (``sat_nano``, ``sat_pro``, ``sam_med3d``, ``samed_lora``, ``sam_unet``).
        image: a NIfTI/NRRD/MHA file or a DICOM series folder (with ``output_dir``: also a folder of scans, or
            a list of these).
        output_dir: ``None``: return the masks in memory; else write the bundle's usual files there
            (``<case>/seg.nii.gz`` on the input grid, ``masks/``, ``legend.json``, DICOM-SEG for DICOM input)
            by running its ``configs/inference.json`` job.
        model_dir: the weights folder (default: the bundle's ``models/``, where converted official weights go; a
            model trained here brings its settings in ``training.json``).
        device: ``auto``, ``cpu`` or ``cuda:N``.
        settings: other config ids of the bundle's ``configs/inference.json`` (``{"keep_largest_component": True}``).
        prompts: the case's prompt fields (module docstring).

    Returns:
        ``(masks, names, grid)``: bool ``(K, X, Y, Z)`` on the input's own grid, their names, that grid; or,
        with ``output_dir``, that folder.

    Raises:
        BundleError: bad input, prompts, weights or settings, named, before any model work where possible.
    """
    _check_prompt_fields(bundle, prompts)
    if output_dir is not None:
        from bundles.bundle_configs import run_inference

        images = [str(p) for p in image] if isinstance(image, (list, tuple)) else str(image)
        run_inference(bundle, model_dir, input_dict={"image": images, **prompts}, output_dir=str(output_dir), device=device,
                      **{"progress": False, **dict(settings or {})})
        return Path(output_dir)
    from bundles.engines.loaded_bundle import LoadedBundle
    from bundles.engines.predict_case import predict_case

    done = predict_case(LoadedBundle(bundle, model_dir, device, settings), {"image": str(image), **prompts})
    return done.masks, done.names, done.grid


def open_session(bundle: str, model_dir: str | PathLike | None = None, *, device: str = "auto",
                 settings: Mapping[str, Any] | None = None) -> ClickSession:
    """The click session of an interactive bundle (``sam_med3d``), a
    :class:`~bundles.interactive.session.ClickSession`: ``set_image``, ``add_click``, ``undo``, ``reset``,
    ``mask``, ``grid``; the image embedding is computed once per image.

    Raises:
        ConfigurationError: the bundle has no click session (its configs define no ``session``).
        CheckpointError: missing or non-matching weights (named), before anything is loaded.
    """
    from bundles.engines.loaded_bundle import LoadedBundle

    loaded = LoadedBundle(bundle, model_dir, device, settings)
    if not loaded.has("session"):
        raise ConfigurationError(f"{bundle} has no click session (its configs/inference.json defines no 'session');"
                                 " use bundles.segment for it")
    return loaded.component("session")
