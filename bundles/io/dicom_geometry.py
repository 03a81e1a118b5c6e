"""DICOM patient geometry (LPS) expressed as RAS affines, shared by the series reader and both writers.

DICOM conventions (PS3.3 C.7.6.2.1.1): ``ImagePositionPatient`` is the LPS position (mm) of the centre of
the first transmitted pixel; ``ImageOrientationPatient`` holds the direction cosines of a row (direction of
increasing column index) then of a column (increasing row index); ``PixelSpacing`` is
``[spacing between rows, spacing between columns]`` in mm. Our voxel axes follow the readers: X is the
DICOM column index, Y the row index, Z the slice index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["LPS_TO_RAS", "slice_normal", "frame_affine"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Flips x and y: DICOM's LPS+ world to nibabel/MONAI RAS+ (its own inverse)."""


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal (LPS) of the slice plane: row cosine x column cosine, shape (3,)."""
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def frame_affine(
    position: Sequence[float], orientation: Sequence[float], pixel_spacing: Sequence[float], slice_step: float = 1.0
) -> np.ndarray:
    """4x4 RAS affine of one DICOM frame: maps ``(column, row, k, 1)`` to RAS mm.

    The third column is ``slice_step`` mm along the slice normal, so the same matrix describes a series
    whose slices are ``slice_step`` apart along the normal (negative steps allowed).
    """
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    lps = np.eye(4)
    lps[:3, 0] = row * float(pixel_spacing[1])
    lps[:3, 1] = col * float(pixel_spacing[0])
    lps[:3, 2] = slice_normal(orientation) * float(slice_step)
    lps[:3, 3] = np.asarray(position, float)
    return LPS_TO_RAS @ lps

