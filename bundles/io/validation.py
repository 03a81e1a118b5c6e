"""Checks that turn unusable input images into :class:`~bundles.errors.BundleInputError`.

Every check names the file and says what is wrong and what to do. ``read_image`` runs them all; each is
also usable on its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from bundles.errors import BundleInputError

__all__ = [
    "MIN_SPACING_MM",
    "MAX_SPACING_MM",
    "check_exists",
    "check_spacing",
    "squeeze_to_3d",
    "check_voxels",
    "read_dicom_image_header",
    "is_dicom_image",
    "find_dicom_series_folders",
    "check_single_series",
    "check_slice_positions",
]

MIN_SPACING_MM = 0.01
"""Smallest plausible voxel size (mm). A project plausibility bound, not from a paper: clinical CT/MR voxels
are 0.1-10 mm; sizes below 10 micrometres come from unset or mis-scaled headers (e.g. metres)."""

MAX_SPACING_MM = 50.0
"""Largest plausible voxel size (mm); same origin as :data:`MIN_SPACING_MM`."""


def check_exists(path: str | PathLike) -> Path:
    """Return ``path`` as a :class:`Path`; raise ``BundleInputError`` if nothing exists there."""
    path = Path(path)
    if not path.exists():
        raise BundleInputError(path, "no such file or folder; check the path (relative paths start at the current folder; in a case list, at the list's folder)")
    return path


def check_spacing(affine: np.ndarray, path: str | PathLike) -> None:
    """Refuse voxel sizes (column norms of the 3x3 part of the 4x4 ``affine``) that are not finite, not
    positive, below :data:`MIN_SPACING_MM` or above :data:`MAX_SPACING_MM`."""
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if not np.all(np.isfinite(affine)) or not np.all(np.isfinite(spacing)):
        raise BundleInputError(path, f"the voxel-to-world affine is not finite (spacing {spacing.tolist()} mm); fix the header")
    if np.any(spacing <= 0) or abs(np.linalg.det(affine[:3, :3])) <= 0:
        raise BundleInputError(
            path, f"voxel spacing {spacing.tolist()} mm has a zero axis (degenerate affine); fix pixdim/sform in the header"
        )
    if np.any(spacing < MIN_SPACING_MM) or np.any(spacing > MAX_SPACING_MM):
        raise BundleInputError(
            path,
            f"implausible voxel spacing {np.round(spacing, 6).tolist()} mm (expected {MIN_SPACING_MM}..{MAX_SPACING_MM} mm"
            " per axis); the header's units or pixdim are probably wrong",
        )


def squeeze_to_3d(array: np.ndarray, path: str | PathLike, frame: int | None = None, allow_2d: bool = False) -> np.ndarray:
    """Return the 3D volume ``(X, Y, Z)`` of an image array read from ``path``.

    Trailing singleton axes after the third are dropped, so ``(X, Y, Z, 1)`` and ``(X, Y, Z, 1, 1)`` are 3D.
    With ``allow_2d`` (models that work on slices) a 2D image ``(X, Y)`` is the one-slice volume ``(X, Y, 1)``.
    ``(X, Y, Z, T)`` with ``T > 1`` needs ``frame`` (0-based) and returns that frame. A 3D image accepts
    only ``frame`` None or 0.

    Raises:
        BundleInputError: fewer than 3 or more than 4 non-singleton dimensions, 4D without ``frame``, or a
            ``frame`` out of range.
    """
    shape = tuple(array.shape)
    ndim = len(shape)
    while ndim > 3 and shape[ndim - 1] == 1:
        ndim -= 1
    if ndim == 2 and allow_2d:
        return array.reshape(*shape, 1)
    if ndim < 3:
        needed = "a 2D image or a 3D volume" if allow_2d else "a 3D volume"
        raise BundleInputError(path, f"image has {len(shape)} dimension(s) (shape {shape}); {needed} is needed")
    if ndim > 4:
        raise BundleInputError(
            path, f"image shape {shape} has {ndim} non-singleton dimensions; only 3D volumes or 4D series of volumes are supported"
        )
    volume = array.reshape(shape[:ndim])
    if ndim == 3:
        if frame not in (None, 0):
            raise BundleInputError(path, f"image is 3D (shape {shape}); frame={frame} does not exist (omit `frame`)")
        return volume
    frames = shape[3]
    if frame is None:
        raise BundleInputError(
            path, f"image is 4D with shape {shape} ({frames} frames); choose one volume with the `frame` option (0..{frames - 1})"
        )
    if not 0 <= int(frame) < frames:
        raise BundleInputError(path, f"frame={frame} is out of range for shape {shape}; use 0..{frames - 1}")
    return volume[..., int(frame)]


def check_voxels(volume: np.ndarray, path: str | PathLike) -> None:
    """Refuse an empty volume, non-finite voxels (counted) and a constant volume."""
    if volume.size == 0:
        raise BundleInputError(path, f"image is empty (shape {tuple(volume.shape)}, zero voxels)")
    finite = np.isfinite(volume)
    if not finite.all():
        bad = int(volume.size - np.count_nonzero(finite))
        raise BundleInputError(
            path, f"image has {bad} NaN/Inf voxel(s) out of {volume.size}; replace them (e.g. with the background value)"
        )
    low, high = volume.min(), volume.max()
    if low == high:
        raise BundleInputError(path, f"image is constant (every voxel = {float(low)}); there is nothing to segment")


def read_dicom_image_header(path: str | PathLike) -> pydicom.Dataset | None:
    """The header (no pixels) of ``path`` if it is a DICOM file with image pixels (``Rows`` present), else None.

    Files that are not DICOM (no ``DICM`` preamble), unreadable or truncated give None, never an error.
    """
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, AttributeError, KeyError):
        return None
    return header if "Rows" in header else None


def is_dicom_image(path: str | PathLike) -> bool:
    """True when ``path`` is a DICOM image file (see :func:`read_dicom_image_header`)."""
    return read_dicom_image_header(path) is not None


def holds_dicom_image(folder: str | PathLike, file_names: Sequence[str]) -> bool:
    """True when one of ``file_names`` in ``folder`` is a DICOM image (headers read in sorted order until one is)."""
    return any(not name.startswith(".") and is_dicom_image(os.path.join(folder, name)) for name in sorted(file_names))


def find_dicom_series_folders(folder: str | PathLike, limit: int = 6) -> list[Path]:
    """Sub-folders of ``folder`` (any depth, ``folder`` itself excluded) that directly hold DICOM image files.

    Hidden folders (``.name``) are skipped and symbolic links are not followed. The walk is sorted and stops
    after ``limit`` folders, so a huge archive root costs at most one header read per file until then.

    Returns:
        Up to ``limit`` folders, in sorted walk order (a parent before its children).
    """
    found: list[Path] = []
    root = os.fspath(folder)
    for current, dirs, file_names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if current != root and holds_dicom_image(current, file_names):
            found.append(Path(current))
            if len(found) >= limit:
                break
    return found


def check_single_series(
    series: Mapping[str, Sequence[Path]], folder: str | PathLike, *, search_subfolders: bool = True
) -> None:
    """Refuse a folder with no DICOM image or with images of several SeriesInstanceUIDs (listed).

    A folder without DICOM images of its own whose sub-folders (any depth) hold some is named in the error:
    with exactly one such sub-folder, ``"the series is in <sub-folder>; pass that folder"``; with several, the
    first few are listed. ``search_subfolders=False`` skips that walk.

    Args:
        series: SeriesInstanceUID -> image files found directly in ``folder``.
        folder: the folder given as the image.
    """
    if not series:
        subfolders = find_dicom_series_folders(folder) if search_subfolders else []
        if len(subfolders) == 1:
            raise BundleInputError(
                folder, f"folder holds no DICOM image files itself; the series is in {subfolders[0]}; pass that folder"
            )
        if subfolders:
            listing = ", ".join(str(p) for p in subfolders[:5]) + (", ..." if len(subfolders) > 5 else "")
            raise BundleInputError(
                folder,
                f"folder holds no DICOM image files itself but {'more than 5' if len(subfolders) > 5 else len(subfolders)}"
                f" of its sub-folders do ({listing}); pass the folder of one series",
            )
        raise BundleInputError(folder, "folder holds no DICOM image files; pass a folder with one DICOM series or a NIfTI/NRRD/MHA file")
    if len(series) > 1:
        listing = "; ".join(f"{uid} ({len(files)} files)" for uid, files in sorted(series.items()))
        raise BundleInputError(
            folder, f"folder holds {len(series)} DICOM series: {listing}; put each series in its own folder"
        )


def check_slice_positions(positions: np.ndarray, folder: str | PathLike) -> None:
    """Refuse a DICOM series whose sorted slice positions (mm along the normal) repeat or are unevenly spaced.

    Tolerance: 1% of the mean step or 0.01 mm, whichever is larger (rounding in scanner headers).
    """
    if len(positions) < 2:
        return
    steps = np.diff(np.asarray(positions, float))
    if np.any(steps <= 1e-6):
        raise BundleInputError(folder, "DICOM series has two slices at the same position; remove the duplicates")
    mean = float(steps.mean())
    if np.max(np.abs(steps - mean)) > max(0.01 * mean, 0.01):
        raise BundleInputError(
            folder,
            f"DICOM slices are unevenly spaced (steps {np.round(steps.min(), 4)}..{np.round(steps.max(), 4)} mm);"
            " a slice is probably missing",
        )
