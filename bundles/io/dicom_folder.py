"""Find the one DICOM series in a folder and order its slices by position along the slice normal."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from bundles.errors import BundleInputError
from bundles.io.dicom_geometry import frame_affine, slice_normal
from bundles.io.validation import check_single_series, check_slice_positions

__all__ = ["DicomSeriesHeaders", "scan_series"]

_REQUIRED = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")


@dataclass(frozen=True)
class DicomSeriesHeaders:
    """Slice files of one series, sorted by position along the normal (``InstanceNumber`` is ignored).

    Attributes:
        files: slice files in the order of the volume's third axis.
        affine: 4x4 RAS affine implied by the headers (first slice's position, mean slice step).
        series_uid: the SeriesInstanceUID.
    """

    files: tuple[Path, ...]
    affine: np.ndarray
    series_uid: str


def _read_header(path: Path) -> pydicom.Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None


def scan_series(folder: str | PathLike, series_uid: str | None = None) -> DicomSeriesHeaders:
    """Read the headers of every file in ``folder`` (not recursive) and return its single image series, or
    with ``series_uid`` the series of that SeriesInstanceUID among several in the folder.

    Files that are not DICOM images (no ``Rows``) are skipped, so a README next to the slices is fine.

    Raises:
        BundleInputError: no DICOM image, several series and no ``series_uid`` (UIDs named), no series of
            ``series_uid``, slices lacking geometry tags, differing orientations, duplicate or unevenly spaced
            positions.
    """
    folder = Path(folder)
    series: dict[str, list[tuple[Path, pydicom.Dataset]]] = defaultdict(list)
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        ds = _read_header(path)
        if ds is not None and "Rows" in ds:
            series[str(ds.get("SeriesInstanceUID", ""))].append((path, ds))
    if series_uid is not None:
        if series_uid not in series:
            raise BundleInputError(folder, f"holds no DICOM series with SeriesInstanceUID {series_uid} (it holds {sorted(series) or 'none'})")
        series = {series_uid: series[series_uid]}
    check_single_series({uid: [p for p, _ in items] for uid, items in series.items()}, folder)
    ((uid, items),) = series.items()
    for path, ds in items:
        missing = [tag for tag in _REQUIRED if tag not in ds]
        if missing:
            raise BundleInputError(path, f"DICOM slice lacks {', '.join(missing)}; cannot place it in space")
    orientation = np.asarray(items[0][1].ImageOrientationPatient, float)
    for path, ds in items[1:]:
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, float), orientation, atol=1e-4):
            raise BundleInputError(path, "slices of the series have different ImageOrientationPatient; cannot stack them")
    normal = slice_normal(orientation)
    positions = np.array([float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)) for _, ds in items])
    order = np.argsort(positions, kind="stable")
    check_slice_positions(positions[order], folder)
    first = items[int(order[0])][1]
    step = float(np.diff(positions[order]).mean()) if len(order) > 1 else float(first.get("SliceThickness", 1.0) or 1.0)
    affine = frame_affine(first.ImagePositionPatient, orientation, first.PixelSpacing, step)
    return DicomSeriesHeaders(tuple(items[int(i)][0] for i in order), affine, uid)
