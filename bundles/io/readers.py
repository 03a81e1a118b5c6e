"""``read_image``: one entry point for NIfTI, NRRD/MHA/MHD and DICOM-series inputs, validated."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import ITKReader, MetaTensor, NibabelReader

from bundles.errors import BundleInputError
from bundles.io.dicom_folder import scan_series
from bundles.io.formats import NIFTI_SUFFIXES, check_image_path
from bundles.io.grid import ImageGrid
from bundles.io.validation import check_spacing, check_voxels, squeeze_to_3d

__all__ = ["read_image"]

_GEOMETRY_ATOL_MM = 1e-3
"""Agreement required between the ITK/GDCM series geometry and the one implied by the slice headers."""

_NIFTI_ATOL_MM = 1e-4
"""Disagreement between nibabel's and MONAI's reading of a NIfTI header tolerated as float rounding (the
file's own affine, nibabel's, is used); larger ones mean sform, qform and pixdim contradict each other."""


def _spatial_affine(affine: np.ndarray) -> np.ndarray:
    """The 4x4 spatial part of a (d+1)x(d+1) affine (ITK gives 5x5 for 4D images)."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape == (4, 4):
        return affine.copy()
    out = np.eye(4)
    out[:3, :3] = affine[:3, :3]
    out[:3, 3] = affine[:3, -1]
    return out


@contextmanager
def _reader_errors(path: Path, kind: str) -> Iterator[None]:
    """Re-raise any failure of a third-party reader as a BundleInputError naming ``path``."""
    try:
        yield
    except BundleInputError:
        raise
    except Exception as exc:  # nibabel/ITK/gzip raise many types for a bad file
        raise BundleInputError(
            path, f"cannot be read as {kind} ({type(exc).__name__}: {exc}); the file is truncated, corrupt or not {kind}"
        ) from exc


def _read_with(reader: NibabelReader | ITKReader, path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    with _reader_errors(path, kind):
        array, meta = reader.get_data(reader.read(str(path)))
    return np.asarray(array), _spatial_affine(meta["affine"])


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Header]:
    """Read a NIfTI file; the header is taken from nibabel before MONAI's reader touches it.

    MONAI's ``NibabelReader`` "corrects" headers whose pixdims disagree with the sform/qform (and rewrites
    pixdim[4] of 4D files); a geometry change is refused here rather than silently applied.
    """
    with _reader_errors(path, "NIfTI"):
        original = nib.load(path)
    if not isinstance(original.header, nib.Nifti1Header):
        raise BundleInputError(path, f"is a {type(original.header).__name__} file; only NIfTI is supported (convert it with nibabel)")
    header, affine = original.header.copy(), np.asarray(original.affine, dtype=np.float64)
    check_spacing(affine, path)
    array, reader_affine = _read_with(NibabelReader(), path, "NIfTI")
    if not np.allclose(reader_affine, affine, rtol=0, atol=_NIFTI_ATOL_MM):
        raise BundleInputError(
            path,
            f"inconsistent NIfTI geometry: sform (code {int(header['sform_code'])}), qform (code"
            f" {int(header['qform_code'])}) and pixdim {header.get_zooms()[:3]} disagree; fix the header so they match",
        )
    return array, affine, header


def _read_dicom_folder(folder: Path, series_uid: str | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    headers = scan_series(folder, series_uid)
    if series_uid is None:
        array, affine = _read_with(ITKReader(), folder, "a DICOM series")
    else:  # one series among several: GDCM reads a folder of links to exactly its slices
        with tempfile.TemporaryDirectory(prefix="series-") as links:
            for i, file in enumerate(headers.files):
                os.symlink(file.resolve(), os.path.join(links, f"{i:06d}.dcm"))
            array, affine = _read_with(ITKReader(), Path(links), "a DICOM series")
    if array.ndim != 3 or array.shape[2] != len(headers.files) or not np.allclose(
        affine, headers.affine, atol=_GEOMETRY_ATOL_MM
    ):
        raise BundleInputError(
            folder,
            f"the series reader built shape {array.shape} / affine {np.round(affine, 4).tolist()} but the"
            f" {len(headers.files)} slice headers imply {np.round(headers.affine, 4).tolist()}; the series is inconsistent",
        )
    return array, affine, tuple(str(f) for f in headers.files)


def read_image(
    path: str | PathLike, *, frame: int | None = None, allow_2d: bool = False, series_uid: str | None = None
) -> tuple[MetaTensor, ImageGrid]:
    """Read and validate a 3D image (or, with ``allow_2d``, a 2D image as a one-slice volume ``(X, Y, 1)``).

    Formats: ``.nii``/``.nii.gz`` (MONAI ``NibabelReader``; the header is kept in the grid so outputs reuse
    it), ``.nrrd``/``.nhdr``/``.mha``/``.mhd`` (MONAI ``ITKReader``), and a folder holding one DICOM series
    (MONAI ``ITKReader``/GDCM; slices ordered by position along the slice normal, cross-checked against the
    headers; ``ImageGrid.dicom_files`` lists them in volume order). ``(X, Y, Z, 1)`` and ``(X, Y, Z, 1, 1)`` are
    3D; ``(X, Y, Z, T)`` needs ``frame``.

    Args:
        path: image file or DICOM folder.
        frame: 0-based volume of a 4D image.
        series_uid: the SeriesInstanceUID to read from a DICOM folder that holds several series.
        allow_2d: accept 2D images (for models that work on slices).

    Returns:
        ``(image, grid)``: ``image`` is a float32 :class:`MetaTensor` of shape ``(1, X, Y, Z)`` over the file's
        voxel axes, whose ``.affine`` (float64) is ``grid.affine`` (voxel index -> RAS mm). DICOM CT values are
        HU (rescale slope/intercept applied); NIfTI scaling (``scl_slope``/``scl_inter``) is applied.

    Raises:
        BundleInputError: missing path, unsupported or unreadable file, bad DICOM folder, wrong number of
            dimensions, missing/invalid ``frame``, implausible spacing, empty, non-finite or constant voxels.
    """
    path = check_image_path(path)
    header: nib.Nifti1Header | None = None
    files: tuple[str, ...] = ()
    name = path.name.lower()
    if path.is_dir():
        array, affine, files = _read_dicom_folder(path, series_uid)
    elif name.endswith(NIFTI_SUFFIXES):
        array, affine, header = _read_nifti(path)
    else:  # one of ITK_SUFFIXES (check_image_path refused any other)
        array, affine = _read_with(ITKReader(), path, "an ITK image (NRRD/MHA/MHD)")
    volume = squeeze_to_3d(array, path, frame, allow_2d)
    check_spacing(affine, path)
    check_voxels(volume, path)
    grid = ImageGrid(volume.shape, affine, str(path), nifti_header=header, dicom_files=files)
    data = torch.from_numpy(np.array(volume, dtype=np.float32, order="C"))[None]
    image = MetaTensor(data, affine=torch.tensor(grid.affine), meta={"filename_or_obj": str(path)})
    return image, grid
