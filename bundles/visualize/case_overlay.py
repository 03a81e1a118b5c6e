"""Overlay of a case folder written by the bundle (``seg.nii.gz``, ``masks/<term>.nii.gz``, ``legend.json``; see
:func:`bundles.io.writers.write_segmentation`) over the image it was segmented from: the folder's masks are
read back (:func:`load_case_masks`) and drawn by :func:`bundles.visualize.overlay.save_overlay_figure`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np

from bundles.errors import BundleInputError, ConfigurationError
from bundles.io.readers import read_image
from bundles.io.reference_masks import load_reference_masks
from bundles.visualize.overlay import display_window, save_overlay_figure

__all__ = ["CaseMasks", "load_case_masks", "save_case_overlay"]

_GRID_ATOL_MM = 1e-3
"""Largest affine difference (mm) between a case's mask files and the image still taken as the same grid; the
mask headers are written from the image's grid (float32 in NIfTI), so only rounding separates them."""


@dataclass(frozen=True)
class CaseMasks:
    """The predicted masks of one case folder.

    Attributes:
        names: class names in label order (``seg.nii.gz`` value 1, 2, ...).
        masks: bool ``(Q, X, Y, Z)`` on the grid of the files.
        affine: 4x4 voxel index -> RAS+ mm of the mask files.
        legend: the parsed ``legend.json``.
    """

    names: list[str]
    masks: np.ndarray
    affine: np.ndarray
    legend: dict


def _read_legend(case_dir: Path) -> dict:
    path = case_dir / "legend.json"
    if not path.is_file():
        raise BundleInputError(
            case_dir, "has no legend.json; pass the folder the bundle wrote for one case (<output_dir>/<case id>/)"
        )
    try:
        legend = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleInputError(path, f"cannot be read as JSON ({error}); rerun the segmentation to rewrite it") from error
    if not isinstance(legend, dict) or not isinstance(legend.get("labels"), dict) or not legend["labels"]:
        raise BundleInputError(path, 'has no "labels" mapping (label value -> class name); it was not written by the bundle')
    return legend


def _load_label_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise BundleInputError(path, "is listed in legend.json but missing; rerun the segmentation of this case")
    try:
        image = nib.load(path)
        return np.asanyarray(image.dataobj), np.asarray(image.affine, dtype=np.float64)
    except Exception as error:  # nibabel / gzip raise many types for a damaged file
        raise BundleInputError(path, f"cannot be read as NIfTI ({type(error).__name__}: {error})") from error


def load_case_masks(case_dir: str | PathLike) -> CaseMasks:
    """Read the predicted masks of a case folder written by :func:`bundles.io.writers.write_segmentation`.

    Each class comes from its own ``masks/<term>.nii.gz`` file (``legend.json`` ``"files"``), so overlapping
    masks stay whole; without a ``"files"`` entry the class is the voxels of its value in ``seg.nii.gz``.

    Raises:
        BundleInputError: no or unreadable ``legend.json``, a listed file missing or unreadable, or mask files
            of different shapes or affines.
    """
    case_dir = Path(case_dir)
    legend = _read_legend(case_dir)
    labels = sorted(((int(value), str(name)) for value, name in legend["labels"].items()), key=lambda item: item[0])
    files = legend.get("files") or {}
    seg: tuple[np.ndarray, np.ndarray] | None = None
    masks, affine, first = [], None, None
    for value, name in labels:
        if name in files:
            path = case_dir / files[name]
            data, file_affine = _load_label_file(path)
            mask = np.asarray(data) > 0
        else:
            path = case_dir / legend.get("seg", "seg.nii.gz")
            seg = seg or _load_label_file(path)
            mask, file_affine = np.asarray(seg[0]) == value, seg[1]
        if mask.ndim != 3:
            raise BundleInputError(path, f"holds an array of shape {mask.shape}; expected a 3-D mask")
        if affine is None:
            affine, first = file_affine, path
        elif mask.shape != masks[0].shape or not np.allclose(file_affine, affine, rtol=0, atol=_GRID_ATOL_MM):
            raise BundleInputError(path, f"is not on the grid of {first}; the case folder mixes outputs of different runs")
        masks.append(mask)
    return CaseMasks([name for _, name in labels], np.stack(masks), affine, legend)


def _reference_legend(legend: Mapping | str | PathLike | None, case: CaseMasks) -> dict[int, str]:
    """Label value -> class name of the reference label map; default: the case's own ``legend.json`` labels."""
    if legend is None:
        legend = case.legend["labels"]
    elif not isinstance(legend, Mapping):
        path = Path(legend)
        try:
            legend = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BundleInputError(path, f"cannot be read as a JSON legend {{value: class name}} ({error})") from error
        if not isinstance(legend, Mapping):
            raise BundleInputError(path, "must hold a JSON object {label value: class name}")
    try:
        return {int(value): str(name) for value, name in legend.items()}
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"reference legend {dict(legend)!r}: keys must be integer label values") from error


def _recorded_source(case_dir: Path) -> str:
    """The input image path that ``legend.json`` of a case folder records (``source``)."""
    source = json.loads((case_dir / "legend.json").read_text(encoding="utf-8")).get("source")
    if not source:
        raise BundleInputError(case_dir / "legend.json", "records no source image; pass --image")
    return str(source)


def save_case_overlay(
    image: str | PathLike | None,
    case_dir: str | PathLike,
    output: str | PathLike | None = None,
    *,
    reference: str | PathLike | None = None,
    reference_legend: Mapping | str | PathLike | None = None,
    window: str | Sequence[float] | None = "ct",
    title: str | None = None,
    show_empty: bool = False,
) -> Path:
    """Draw ``overlay.png`` for one case folder: axial and coronal slices through the centre of the largest
    predicted mask, predicted contours solid, reference contours (if given) dashed (see
    :func:`save_overlay_figure`).

    Args:
        image: the image the case was segmented from: a NIfTI/NRRD/MHA file or a DICOM series folder; None
            takes the source path recorded in the case's ``legend.json``.
        case_dir: the case folder written by the bundle (``<output_dir>/<case id>/`` with ``legend.json``).
        output: PNG to write; default ``<case_dir>/overlay.png``.
        reference: optional reference label map (any grid: it is resampled onto the image in world
            coordinates, nearest neighbour).
        reference_legend: label value -> class name of ``reference``, as a mapping or a JSON file; default the
            case's ``legend.json`` labels (a reference numbered like ``seg.nii.gz``). Classes it does not name
            get no reference contour.
        window: ``"ct"`` (soft-tissue window, -160..240 HU), ``"percentile"`` (1st-99th percentile, for MR) or
            ``(low, high)`` in image units.
        title: figure title; default names the case folder.
        show_empty: also list classes that are empty in the prediction (and the reference); by default only
            classes with something to draw are shown (all of them when every mask is empty).

    Returns:
        The written PNG path.

    Raises:
        BundleInputError: unreadable image, case folder or reference, or masks not on the image's grid.
        ConfigurationError: a bad ``window`` or ``reference_legend``.
    """
    case_dir = Path(case_dir)
    window_range = display_window(window)
    case = load_case_masks(case_dir)
    if image is None:
        image = _recorded_source(case_dir)
    volume, grid = read_image(image)
    if case.masks.shape[1:] != grid.shape or not np.allclose(case.affine, grid.affine, rtol=0, atol=_GRID_ATOL_MM):
        raise BundleInputError(
            case_dir,
            f"masks of shape {case.masks.shape[1:]} ({''.join(nib.aff2axcodes(case.affine))}) are not on the grid of {image}"
            f" (shape {grid.shape}, {grid.orientation}); pass the image this case was segmented from"
            f" (legend.json names {case.legend.get('source', 'no source')})",
        )
    ref = None
    if reference is not None:
        ref_legend = _reference_legend(reference_legend, case)
        named = set(ref_legend.values())
        scored = [n for n in case.names if n in named]
        ref = np.zeros_like(case.masks)
        if scored:
            loaded = load_reference_masks(reference, ref_legend, scored, grid)
            for name, mask in zip(scored, loaded):
                ref[case.names.index(name)] = mask
    drawn = case.masks.any(axis=(1, 2, 3)) | (False if ref is None else ref.any(axis=(1, 2, 3)))
    shown = list(range(len(case.names))) if show_empty or not drawn.any() else [int(q) for q in np.flatnonzero(drawn)]
    heading = title or f"{case_dir.name}: prediction (solid)" + (" vs reference (dashed)" if ref is not None else "")
    return save_overlay_figure(
        np.asarray(volume[0]), grid, case.masks[shown], None if ref is None else ref[shown],
        [case.names[q] for q in shown], output if output is not None else case_dir / "overlay.png",
        window=window_range, title=heading,
    )
