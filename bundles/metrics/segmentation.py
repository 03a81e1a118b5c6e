"""Dice, normalised surface Dice (NSD) and HD95 for one binary mask pair on a grid with physical spacing.

Masks are binary arrays (numpy or torch, bool or 0/1) of identical spatial shape ``(X, Y, Z)`` (2-D
``(X, Y)`` works too), both on the same grid; ``spacing`` is the voxel size in mm along each of those
axes, in the same order (the column norms of the grid's affine; may be anisotropic).

The computations are MONAI's (``compute_dice``, ``compute_surface_dice``, ``compute_hausdorff_distance``
with ``spacing``): a mask's surface is its set of edge voxels (the mask minus its 6-connected erosion),
distances are Euclidean in mm between edge-voxel centres, and NSD counts the edge voxels of each mask
within ``tolerance_mm`` (inclusive) of the other mask's surface. SAT evaluates NSD with DeepMind's
surface-distance code (surface elements weighted by area) at a 1 mm tolerance (SAT repository,
``evaluate/SurfaceDice.py``); the voxel-count variant used here can differ slightly from it.

Empty-mask convention (one rule for every metric here, so no case is ever NaN or dropped from a mean):

=====================================  ======  =====  ===============================================
case                                   Dice    NSD    HD95 (mm)
=====================================  ======  =====  ===============================================
both masks empty (correctly absent)    1       1      0
exactly one empty (miss / false pos.)  0       0      worst case: the diagonal of the image extent,
                                                      ``sqrt(sum((shape[i] * spacing[i]) ** 2))``
both non-empty                         MONAI   MONAI  MONAI, 95th percentile, symmetric
=====================================  ======  =====  ===============================================

The NSD tolerance defaults to 1 mm, the value of the SAT paper's evaluation.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

from bundles.errors import BundleInputError, ConfigurationError

__all__ = [
    "DEFAULT_TOLERANCE_MM",
    "METRIC_COLUMNS",
    "dice",
    "normalized_surface_dice",
    "hausdorff95",
    "worst_case_distance",
    "evaluate_case",
]

DEFAULT_TOLERANCE_MM = 1.0
"""NSD tolerance of the SAT paper's evaluation (SAT repository, ``evaluate/SurfaceDice.py``)."""

METRIC_COLUMNS = ("case", "class", "dice", "iou", "nsd", "hd95", "pred_voxels", "ref_voxels", "nsd_tolerance_mm")
"""Columns of every row :func:`evaluate_case` returns, in order; extra columns follow them."""

Mask = np.ndarray | torch.Tensor


def _as_mask(mask: Mask, what: str) -> torch.Tensor:
    """Return ``mask`` as a CPU bool tensor; raise :class:`BundleInputError` if it is not binary."""
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.dtype != np.bool_:
        binary = (array == 0) | (array == 1)
        if not binary.all():
            values = np.unique(array[~binary])[:5].tolist()
            raise BundleInputError(
                None, f"{what} is not a binary mask (it holds {values}); pass label_map == class_index"
            )
        array = array != 0
    if array.ndim not in (2, 3):
        raise BundleInputError(None, f"{what} has shape {array.shape}; expected a 2-D or 3-D mask")
    return torch.from_numpy(np.ascontiguousarray(array))


def _pair(pred: Mask, ref: Mask) -> tuple[torch.Tensor, torch.Tensor]:
    pred_t, ref_t = _as_mask(pred, "prediction"), _as_mask(ref, "reference")
    if pred_t.shape != ref_t.shape:
        raise BundleInputError(
            None,
            f"prediction shape {tuple(pred_t.shape)} differs from reference shape {tuple(ref_t.shape)}; "
            "resample the prediction onto the reference grid first",
        )
    return pred_t, ref_t


def _spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise ConfigurationError(f"spacing {values} must be {ndim} positive finite voxel sizes in mm")
    return values


def _batch(mask: torch.Tensor) -> torch.Tensor:
    """``(X, Y[, Z])`` bool -> ``(1, 1, X, Y[, Z])`` float, MONAI's one-hot batch layout."""
    return mask[None, None].float()


def worst_case_distance(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The diagonal of the image extent in mm, ``sqrt(sum((shape[i] * spacing[i]) ** 2))``.

    HD95 of a miss or a false positive (exactly one mask empty) under this module's convention.
    """
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing))))


@contextlib.contextmanager
def _without_monai_internal_deprecation() -> Iterator[None]:
    """MONAI's surface metrics pass ``always_return_as_numpy`` to its own ``get_mask_edges``, which then warns
    on every call that the argument is deprecated (MONAI 1.5): a warning about MONAI's code, not ours or the
    user's, kept out of the logs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
        yield


def dice(pred: Mask, ref: Mask) -> float:
    """Dice coefficient ``2|P∩R| / (|P|+|R|)`` of two binary masks of the same shape.

    Both empty -> 1.0; exactly one empty -> 0.0.

    Raises:
        BundleInputError: a mask is not binary, not 2-D/3-D, or the shapes differ.
    """
    pred_t, ref_t = _pair(pred, ref)
    return float(compute_dice(_batch(pred_t), _batch(ref_t), include_background=True, ignore_empty=False).item())


def normalized_surface_dice(
    pred: Mask, ref: Mask, spacing: Sequence[float], tolerance_mm: float = DEFAULT_TOLERANCE_MM
) -> float:
    """Normalised surface Dice: fraction of both surfaces within ``tolerance_mm`` of the other surface.

    Args:
        pred, ref: binary masks ``(X, Y, Z)`` on the same grid.
        spacing: voxel size in mm per axis ``(sx, sy, sz)``.
        tolerance_mm: accepted surface deviation in mm (inclusive); default 1 mm (SAT paper).

    Both empty -> 1.0; exactly one empty -> 0.0.

    Raises:
        BundleInputError: a mask is not binary, not 2-D/3-D, or the shapes differ.
        ConfigurationError: bad spacing, or a negative or non-finite tolerance.
    """
    pred_t, ref_t = _pair(pred, ref)
    voxel_mm = _spacing(spacing, pred_t.ndim)
    if not (math.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise ConfigurationError(f"NSD tolerance {tolerance_mm} mm must be a non-negative number")
    pred_any, ref_any = bool(pred_t.any()), bool(ref_t.any())
    if not (pred_any and ref_any):
        return 1.0 if pred_any == ref_any else 0.0
    with _without_monai_internal_deprecation():
        value = compute_surface_dice(
            _batch(pred_t), _batch(ref_t), [float(tolerance_mm)], include_background=True, spacing=list(voxel_mm)
        )
    return float(value.item())


def hausdorff95(pred: Mask, ref: Mask, spacing: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance between the two surfaces, in mm.

    Args:
        pred, ref: binary masks ``(X, Y, Z)`` on the same grid.
        spacing: voxel size in mm per axis ``(sx, sy, sz)``.

    Both empty -> 0.0; exactly one empty -> :func:`worst_case_distance` of the grid (never NaN).

    Raises:
        BundleInputError: a mask is not binary, not 2-D/3-D, or the shapes differ.
        ConfigurationError: bad spacing.
    """
    pred_t, ref_t = _pair(pred, ref)
    voxel_mm = _spacing(spacing, pred_t.ndim)
    pred_any, ref_any = bool(pred_t.any()), bool(ref_t.any())
    if not (pred_any and ref_any):
        return 0.0 if pred_any == ref_any else worst_case_distance(pred_t.shape, voxel_mm)
    with _without_monai_internal_deprecation():
        value = compute_hausdorff_distance(
            _batch(pred_t), _batch(ref_t), include_background=True, percentile=95, spacing=list(voxel_mm)
        )
    return float(value.item())


def evaluate_case(
    pred: Mapping[str, Mask],
    ref: Mapping[str, Mask],
    spacing: Sequence[float],
    *,
    case_id: str,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    extra: Mapping[str, object] | None = None,
) -> list[dict]:
    """Score every class of one case; one row per class of ``ref``, in ``ref``'s order.

    Args:
        pred: class name -> predicted binary mask ``(X, Y, Z)``. A class of ``ref`` missing here is scored
            as an empty prediction (a miss); classes only in ``pred`` have no reference and are not scored.
        ref: class name -> reference binary mask on the same grid; an all-zero mask means "annotated as
            absent" (a prediction there is a false positive).
        spacing: voxel size in mm per axis.
        case_id: written to the ``case`` column.
        tolerance_mm: NSD tolerance in mm (default 1 mm, SAT paper).
        extra: further columns copied into every row (e.g. dataset, modality, region).

    Returns:
        Rows with the keys of :data:`METRIC_COLUMNS` (``hd95`` and ``nsd_tolerance_mm`` in mm, voxel counts
        as int) followed by the ``extra`` keys.

    Raises:
        BundleInputError: ``ref`` is empty, or a mask pair is unusable (names the case and class).
        ConfigurationError: an ``extra`` key collides with a metric column, or bad spacing/tolerance.
    """
    extra = dict(extra or {})
    clashes = sorted(set(extra) & set(METRIC_COLUMNS))
    if clashes:
        raise ConfigurationError(f"extra columns {clashes} collide with the metric columns {METRIC_COLUMNS}")
    if not ref:
        raise BundleInputError(None, f"case {case_id!r}: no reference masks to evaluate against")
    rows = []
    for name, ref_mask in ref.items():
        ref_t = _as_mask(ref_mask, f"case {case_id!r} reference {name!r}")
        pred_mask = pred.get(name)
        pred_t = torch.zeros_like(ref_t) if pred_mask is None else _as_mask(pred_mask, f"case {case_id!r} {name!r}")
        try:
            row = {
                "case": case_id,
                "class": name,
                "dice": (value := dice(pred_t, ref_t)),
                "iou": value / (2.0 - value),  # Jaccard from Dice, exact per mask (SAM-UNet reports both)
                "nsd": normalized_surface_dice(pred_t, ref_t, spacing, tolerance_mm),
                "hd95": hausdorff95(pred_t, ref_t, spacing),
                "pred_voxels": int(pred_t.sum()),
                "ref_voxels": int(ref_t.sum()),
                "nsd_tolerance_mm": float(tolerance_mm),
            }
        except BundleInputError as error:
            raise BundleInputError(error.path, f"case {case_id!r}, class {name!r}: {error.problem}") from error
        rows.append({**row, **extra})
    return rows
