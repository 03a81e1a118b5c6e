"""``write_segmentation``: multi-label NIfTI, one NIfTI per class, a JSON legend and optional DICOM-SEG."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bundles.errors import ConfigurationError
from bundles.io.atomic import atomic_write, atomic_write_json
from bundles.io.dicom_seg import DEFAULT_ALGORITHM_NAME, DEFAULT_SERIES_DESCRIPTION, build_dicom_seg
from bundles.io.grid import ImageGrid

__all__ = ["OVERLAP_RULE", "safe_name", "label_map", "label_image", "mask_volumes_ml", "write_segmentation"]

logger = logging.getLogger(__name__)

OVERLAP_RULE = (
    "a voxel covered by several masks takes the label of the smallest mask (fewest voxels; ties go to the"
    " earlier name), so small structures inside large ones survive; the per-class files in masks/ keep every"
    " mask whole"
)

_NIFTI_INTENT_LABEL = 1002
"""NIFTI_INTENT_LABEL from the NIfTI-1 standard (nifti1.h): voxel values are label indices."""


def safe_name(name: str) -> str:
    """File-name stem for a class name: lower case, runs of characters other than ``a-z0-9._-`` -> ``_``."""
    stem = re.sub(r"[^a-z0-9._-]+", "_", name.strip().lower()).strip("._")
    return stem or "class"


def label_map(masks: np.ndarray) -> np.ndarray:
    """Multi-label volume of bool ``masks`` ``(Q, X, Y, Z)``: values ``1..Q`` (0 = background).

    Overlap rule (:data:`OVERLAP_RULE`): where masks overlap, the smallest mask wins; ties go to the lower
    index. dtype uint8 for ``Q <= 255``, else uint16.
    """
    counts = masks.reshape(masks.shape[0], -1).sum(axis=1)
    order = sorted(range(masks.shape[0]), key=lambda q: (int(counts[q]), q), reverse=True)
    labels = np.zeros(masks.shape[1:], dtype=np.uint8 if masks.shape[0] <= 255 else np.uint16)
    for q in order:
        labels[masks[q]] = q + 1
    return labels


def label_image(data: np.ndarray, grid: ImageGrid) -> nib.Nifti1Image:
    """A NIfTI image of integer ``data`` ``(X, Y, Z)`` on ``grid``.

    With a NIfTI input the input's own header is copied: sform, qform and pixdims stay bit-exact; data type,
    scaling (slope 1, intercept 0), intent (label), display range and extensions are reset for labels.
    Otherwise sform and qform are set from ``grid.affine`` (code 1, scanner).
    """
    if grid.nifti_header is None:
        image = nib.Nifti1Image(data, grid.affine)
        image.set_sform(grid.affine, code=1)
        image.set_qform(grid.affine, code=1)
    else:
        header = grid.nifti_header.copy()
        header.extensions.clear()
        image = nib.Nifti1Image(data, None, header=header)
        image.header.set_intent(_NIFTI_INTENT_LABEL)
    image.header.set_data_dtype(data.dtype)
    image.header["cal_min"], image.header["cal_max"] = 0, float(data.max())
    return image


def _check_arguments(masks: np.ndarray, names: Sequence[str], grid: ImageGrid, dicom_seg: bool | None) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 4 or tuple(masks.shape[1:]) != grid.shape:
        raise ValueError(f"masks must have shape (Q, {', '.join(map(str, grid.shape))}) to match the grid of {grid.source}; got {masks.shape}")
    if masks.dtype != bool:
        if not np.isin(masks, (0, 1)).all():
            raise ValueError(f"masks must be boolean (or 0/1); got dtype {masks.dtype} with other values")
        masks = masks.astype(bool)
    if len(names) != masks.shape[0] or masks.shape[0] == 0:
        raise ValueError(f"{masks.shape[0]} masks but {len(names)} names; give one name per mask (at least one)")
    if masks.shape[0] > 65535:
        raise ValueError(f"{masks.shape[0]} classes do not fit a uint16 label map")
    stems = [safe_name(n) for n in names]
    if len(set(stems)) != len(stems) or any(not str(n).strip() for n in names):
        raise ValueError(f"class names must be non-empty and distinct as file names; got {list(names)} -> {stems}")
    if dicom_seg and not grid.dicom_files:
        raise ConfigurationError(f"{grid.source}: DICOM-SEG output was requested but the input is not a DICOM series")
    return masks


_LEGEND_KEYS = ("labels", "files", "seg", "overlap_rule", "source", "voxels", "volumes_ml", "dicom_seg", "dicom_seg_error")
"""Keys :func:`write_segmentation` writes into legend.json itself; provenance may not reuse them."""


def _check_provenance(provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    """``provenance`` as a plain dict of JSON-serialisable items whose keys are not legend keys.

    Raises:
        ValueError: a key that legend.json uses itself, a non-string key, or a value JSON cannot hold.
    """
    items = {k: os.fspath(v) if isinstance(v, PathLike) else v for k, v in (provenance or {}).items()}
    for key, value in items.items():
        if not isinstance(key, str) or key in _LEGEND_KEYS:
            raise ValueError(
                f"provenance key {key!r} is not allowed (keys must be strings other than {', '.join(_LEGEND_KEYS)})"
            )
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"provenance[{key!r}] = {value!r} cannot be written to legend.json ({exc}); pass str/number/list/dict"
            ) from exc
    return items


def mask_volumes_ml(masks: np.ndarray, names: Sequence[str], grid: ImageGrid) -> dict[str, float]:
    """Volume of each mask in millilitres: voxel count x voxel volume (mm^3) / 1000.

    The voxel volume is ``|det|`` of the affine's 3x3 part, which is the product of the grid's spacings
    (``grid.spacing``, mm) for orthogonal voxel axes and stays right for sheared ones.

    Args:
        masks: bool ``(Q, X, Y, Z)`` on ``grid``.
        names: ``Q`` names, the keys of the result.
    """
    voxel_mm3 = abs(float(np.linalg.det(grid.affine[:3, :3])))
    counts = np.asarray(masks).reshape(len(names), -1).sum(axis=1)
    return {str(name): float(count) * voxel_mm3 / 1000.0 for name, count in zip(names, counts)}


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line (newlines of multi-line messages become spaces)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _remove_stale(output_dir: Path, current: set[str]) -> None:
    """Delete outputs of an earlier run into the same case folder that this run did not write (masks of other
    prompts, a DICOM-SEG of other masks), so the folder holds exactly what its legend.json lists."""
    for path in [*(output_dir / "masks").glob("*.nii.gz"), output_dir / "seg.dcm"]:
        if path.is_file() and path.relative_to(output_dir).as_posix() not in current:
            path.unlink()


def write_segmentation(
    masks: np.ndarray,
    names: Sequence[str],
    grid: ImageGrid,
    output_dir: str | PathLike,
    *,
    dicom_seg: bool | None = None,
    provenance: Mapping[str, Any] | None = None,
    series_description: str = DEFAULT_SERIES_DESCRIPTION,
    algorithm_name: str = DEFAULT_ALGORITHM_NAME,
    algorithm_version: str | None = None,
) -> dict[str, Path | str]:
    """Write the masks of one case into ``output_dir``.

    Files:
        ``seg.nii.gz``: multi-label map, values ``1..Q`` in the order of ``names`` (uint8, uint16 above 255
        classes). Overlap rule: a voxel covered by several masks takes the label of the SMALLEST mask
        (fewest voxels), so a small structure inside a big one survives.
        ``masks/<safe_name>.nii.gz``: one uint8 0/1 file per name (see :func:`safe_name`), overlaps kept.
        ``legend.json``: ``{"labels": {"1": name, ...}, "files": {name: "masks/..."}, "seg": "seg.nii.gz",
        "overlap_rule": ..., "source": <absolute path of the input>, "voxels": {name: count},
        "volumes_ml": {name: millilitres}}``, the items of ``provenance``, and ``"dicom_seg": "seg.dcm"`` when
        written or ``"dicom_seg_error": <problem>`` when the DICOM-SEG failed.
        ``seg.dcm``: BINARY DICOM-SEG, when ``dicom_seg`` is True, or None and the input was a DICOM series.

    Order: arguments are checked before anything is written; then the NIfTI files and legend.json are
    written (each atomically), then the DICOM-SEG is built and written, and the legend is rewritten with its
    outcome. A DICOM-SEG that cannot be built or written (an odd source header, a full disk, ...) never
    raises: the NIfTI outputs stay, the problem is logged as one warning line naming ``output_dir`` and is
    returned under ``"dicom_seg_error"``.

    NIfTI outputs reuse the input's NIfTI header when there is one (see :func:`label_image`).

    Args:
        masks: bool ``(Q, X, Y, Z)`` on ``grid``.
        names: ``Q`` class names.
        grid: the input image's grid.
        output_dir: created if missing.
        dicom_seg: force (True) or skip (False) the DICOM-SEG; None writes it for DICOM inputs.
        provenance: extra legend.json items, e.g. ``{"model": "SAT-Pro", "weights": "<sha256>"}``; values
            must be JSON-serialisable (paths are written as str) and keys must differ from the legend's own keys.
        series_description: SeriesDescription of the DICOM-SEG.
        algorithm_name: the model, written as AlgorithmName of every DICOM-SEG segment.
        algorithm_version: the weights' id or hash, written as AlgorithmVersion (default: package version).

    Returns:
        Paths by key: ``"seg"``, ``"legend"``, ``"dicom_seg"`` (if written) and ``"mask:<name>"`` per class;
        ``"dicom_seg_error"``: the problem (a one-line str) when the DICOM-SEG was requested but failed.

    Raises:
        ValueError: masks/grid shape mismatch, non-binary masks, wrong number of names, duplicate names, a
            provenance key the legend uses itself or a value JSON cannot hold.
        ConfigurationError: ``dicom_seg=True`` for an input that is not a DICOM series.
    """
    masks = _check_arguments(masks, names, grid, dicom_seg)
    extra = _check_provenance(provenance)
    names = [str(n) for n in names]
    write_seg_dcm = bool(grid.dicom_files) if dicom_seg is None else dicom_seg
    output_dir = Path(output_dir)
    paths: dict[str, Path | str] = {}
    files: dict[str, str] = {}
    for name, mask in zip(names, masks):
        relative = f"masks/{safe_name(name)}.nii.gz"
        image = label_image(mask.astype(np.uint8), grid)
        paths[f"mask:{name}"] = atomic_write(output_dir / relative, lambda tmp, img=image: nib.save(img, tmp))
        files[name] = relative
    seg_image = label_image(label_map(masks), grid)
    paths["seg"] = atomic_write(output_dir / "seg.nii.gz", lambda tmp: nib.save(seg_image, tmp))
    legend: dict[str, Any] = {
        "labels": {str(q + 1): name for q, name in enumerate(names)},
        "files": files,
        "seg": "seg.nii.gz",
        "overlap_rule": OVERLAP_RULE,
        "source": os.path.abspath(grid.source),
        "voxels": {name: int(m.sum()) for name, m in zip(names, masks)},
        "volumes_ml": mask_volumes_ml(masks, names, grid),
        **extra,
    }
    paths["legend"] = atomic_write_json(output_dir / "legend.json", legend)
    _remove_stale(output_dir, set(files.values()) | ({"seg.dcm"} if write_seg_dcm else set()))
    if not write_seg_dcm:
        return paths
    try:
        dataset = build_dicom_seg(
            masks, names, grid,
            series_description=series_description, algorithm_name=algorithm_name, algorithm_version=algorithm_version,
        )
        paths["dicom_seg"] = atomic_write(output_dir / "seg.dcm", lambda tmp: dataset.save_as(tmp))
        atomic_write_json(output_dir / "legend.json", {**legend, "dicom_seg": "seg.dcm"})
    except Exception as exc:  # highdicom/pydicom/OS raise many types; the NIfTI outputs are complete already
        problem = _one_line(exc)
        logger.warning("%s: DICOM-SEG not written (%s); the NIfTI files and legend.json are complete", output_dir, problem)
        paths["dicom_seg_error"] = problem
        try:
            atomic_write_json(output_dir / "legend.json", {**legend, "dicom_seg_error": problem})
        except OSError:  # e.g. the disk that refused seg.dcm; the legend written above stays
            pass
    return paths
