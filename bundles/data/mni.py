"""The MNI152 2009 brain template as a labelled MRI demo case (no download: the files ship with nilearn).

Source: nilearn's copy of the ICBM 2009 nonlinear symmetric MNI152 template (``load_mni152_template``,
``load_mni152_gm_template``, ``load_mni152_wm_template``; 1 mm, 197 x 233 x 189, RAS affine). The T1 image
is nilearn's rescaled template (values in [0, 1]).

Labels come from the grey- and white-matter probability maps: a voxel gets the tissue with the larger
probability if that probability exceeds 0.5 (ties, possible only where the maps sum above 1, go to grey
matter); everything else is background. With probabilities that sum to at most 1, "exceeds 0.5" already
picks the larger one, so the two labels are disjoint by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundles.errors import ConfigurationError

__all__ = ["MNICase", "MNI_LEGEND", "TISSUE_THRESHOLD", "make_mni_case"]

MNI_LEGEND: dict[int, str] = {1: "grey matter", 2: "white matter"}
"""Label value -> SAT vocabulary term (SAT-DS spells ``mri_grey matter`` with "grey")."""

TISSUE_THRESHOLD = 0.5
"""Minimum tissue probability for a label (majority vote on the probability map)."""


@dataclass(frozen=True)
class MNICase:
    """The MNI152 demo case.

    Attributes:
        image: float32 T1 intensities in [0, 1], shape ``(X, Y, Z)``.
        labels: uint8, shape ``(X, Y, Z)``; 0 background, 1 grey matter, 2 white matter.
        affine: float64 ``(4, 4)`` voxel index -> RAS+ (MNI) mm, from the template file.
        legend: label value -> SAT vocabulary term.
    """

    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    legend: dict[int, str]


def make_mni_case(resolution: int = 1) -> MNICase:
    """Load the template and its tissue maps and label grey and white matter.

    Args:
        resolution: voxel size in mm; 1 is the shipped grid, other values are resampled by nilearn.

    Raises:
        ConfigurationError: the template and probability maps are not on the same grid.
    """
    from nilearn.datasets import load_mni152_gm_template, load_mni152_template, load_mni152_wm_template

    t1 = load_mni152_template(resolution=resolution)
    grey = load_mni152_gm_template(resolution=resolution)
    white = load_mni152_wm_template(resolution=resolution)
    for name, tissue in (("grey", grey), ("white", white)):
        if tissue.shape != t1.shape or not np.allclose(tissue.affine, t1.affine):
            raise ConfigurationError(
                f"nilearn's MNI152 {name}-matter map {tissue.shape} is not on the T1 template grid {t1.shape}"
            )
    grey_p = np.asarray(grey.get_fdata(dtype=np.float32))
    white_p = np.asarray(white.get_fdata(dtype=np.float32))
    labels = np.zeros(t1.shape, dtype=np.uint8)
    labels[(white_p > TISSUE_THRESHOLD) & (white_p > grey_p)] = 2
    labels[(grey_p > TISSUE_THRESHOLD) & (grey_p >= white_p)] = 1
    return MNICase(
        image=np.asarray(t1.get_fdata(dtype=np.float32)),
        labels=labels,
        affine=np.asarray(t1.affine, dtype=np.float64),
        legend=dict(MNI_LEGEND),
    )
