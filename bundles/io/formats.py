"""The image formats the bundles read, and a check of an input path against them that needs no image library
(pydicom only): the per-case job runs it on every case before any model loads (:func:`bundles.engines.segmentation_job.prepare_cases`),
:func:`bundles.io.readers.read_image` before it reads.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from bundles.errors import BundleInputError
from bundles.io.validation import check_exists, check_single_series, holds_dicom_image

__all__ = ["NIFTI_SUFFIXES", "ITK_SUFFIXES", "IMAGE_SUFFIXES", "check_image_path"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES


def check_image_path(path: str | PathLike) -> Path:
    """``path`` as a :class:`Path` if it can be an image: an existing file with one of :data:`IMAGE_SUFFIXES`,
    or a folder holding DICOM image files (headers are read until the first image; the series itself is
    checked when it is read).

    Raises:
        BundleInputError: nothing there, an unsupported file type (a PNG, a single ``.dcm`` file), or a folder
            without DICOM images of its own (naming the sub-folder that holds the series, if one does).
    """
    path = check_exists(path)
    if path.is_dir():
        if not holds_dicom_image(path, [p.name for p in path.iterdir() if p.is_file()]):
            check_single_series({}, path)
        return path
    name = path.name.lower()
    if not name.endswith(IMAGE_SUFFIXES):
        hint = " (for DICOM pass the folder that holds the series)" if name.endswith((".dcm", ".ima")) else ""
        raise BundleInputError(path, f"unsupported file type{hint}; use {', '.join(IMAGE_SUFFIXES)} or a DICOM series folder")
    return path
