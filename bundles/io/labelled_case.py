"""``read_labelled_case``: a case's image and its label map, the map brought onto the image's voxel grid.

Training, dataset conversion and evaluation all read an image with the label map (``mask``) of its case
list entry. The map may be stored on another grid than the image (another orientation, spacing or field of
view); it is always matched through the affines in world coordinates (nearest neighbour, so label values
are copied, never mixed), never by voxel index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.data import MetaTensor

from bundles.errors import BundleInputError
from bundles.io.cases import Case
from bundles.io.grid import ImageGrid
from bundles.io.readers import read_image
from bundles.io.resample import resample_to_grid

__all__ = ["LabelledCase", "check_labelled", "read_labelled_case", "LABEL_VALUE_ATOL"]

LABEL_VALUE_ATOL = 1e-3
"""Largest distance of a stored label value from an integer accepted as float rounding (NIfTI scaling of an
integer map); anything further is a map of intensities or probabilities, not of labels."""


@dataclass(frozen=True)
class LabelledCase:
    """An image and its label map on the same voxel grid.

    Attributes:
        image: float32 :class:`MetaTensor` ``(1, X, Y, Z)`` over the image file's voxel axes, ``.affine`` (voxel
            index -> RAS mm) = ``grid.affine`` (as :func:`~bundles.io.readers.read_image` returns it).
        grid: the image's :class:`~bundles.io.grid.ImageGrid` (``grid.shape == (X, Y, Z)``).
        labels: float32 :class:`MetaTensor` ``(1, X, Y, Z)`` of integer label values (rounded) on the image's
            grid, ``.affine`` a copy of ``image.affine``; 0 where the map does not reach.
    """

    image: MetaTensor
    grid: ImageGrid
    labels: MetaTensor


def check_labelled(case: Case, purpose: str) -> None:
    """Refuse a case without ``mask`` or ``legend``, naming its image; files are not opened.

    Args:
        purpose: what needs the labels, the start of the message (``"a training case"``, ``"evaluation"``).

    Raises:
        BundleInputError: ``"<image>: <purpose> needs 'mask' (label map) and 'legend' (value -> name)"``.
    """
    if case.mask is None or not case.legend:
        raise BundleInputError(case.image, f"{purpose} needs 'mask' (label map) and 'legend' (value -> name)")


def _read_label_map(case: Case) -> tuple[MetaTensor, ImageGrid]:
    """The case's label map as read, its reading errors naming the map and the image it labels."""
    try:
        return read_image(case.mask)
    except BundleInputError as exc:
        raise BundleInputError(exc.path, f"cannot be the label map of {case.image}: {exc.problem}") from exc


def read_labelled_case(case: Case, purpose: str) -> LabelledCase:
    """Read ``case.image`` (its ``frame``/``series_uid``) and ``case.mask``, the map resampled onto the image grid.

    Args:
        case: a case list entry with ``mask`` and ``legend``.
        purpose: what needs the labels, for :func:`check_labelled`'s message.

    Returns:
        :class:`LabelledCase` (image and labels ``(1, X, Y, Z)`` float32 on the image's grid).

    Raises:
        BundleInputError: no ``mask``/``legend`` (names the image); any unusable image (names the image, see
            :func:`~bundles.io.readers.read_image`); a missing or unreadable label map, or one that is not a
            single 3D volume or is constant (names the map); a map with non-integer values, or one none of
            whose labelled voxels lies inside the image in world coordinates (another image's map, or a wrong
            header) (names the map and the image).
    """
    check_labelled(case, purpose)
    image, grid = read_image(case.image, frame=case.frame, series_uid=case.series_uid)
    raw, raw_grid = _read_label_map(case)
    off_integer = torch.abs(raw - raw.round())
    if float(off_integer.max()) > LABEL_VALUE_ATOL:
        value = float(raw.flatten()[int(off_integer.argmax())])
        raise BundleInputError(
            case.mask, f"holds non-integer values (e.g. {value:g}); a label map holds integer labels: is it an image or a"
            f" probability map instead of the label map of {case.image}?"
        )
    labels = resample_to_grid(raw, raw_grid.affine, grid, mode="nearest").round()
    if not bool(labels.any()):
        raise BundleInputError(
            case.mask,
            f"none of its labelled voxels lies inside the image {case.image} in world coordinates (map: shape"
            f" {raw_grid.shape}, {raw_grid.orientation}, origin {np.round(raw_grid.affine[:3, 3], 1).tolist()} mm; image:"
            f" shape {grid.shape}, {grid.orientation}, origin {np.round(grid.affine[:3, 3], 1).tolist()} mm); it is"
            " another image's map or a header is wrong",
        )
    return LabelledCase(image, grid, MetaTensor(labels, affine=image.affine.clone()))
