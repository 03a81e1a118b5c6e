"""The cases of a cohort folder (``--input_dir``): every image file and every DICOM series below it.

What counts as a case, found recursively (hidden files and folders skipped, symbolic links to folders not
followed, everything in sorted order so every process of a sharded run sees the same list):

- a file ending in ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha`` or ``.mhd`` (suffixes of
  :mod:`bundles.io.readers`); its id is its path below the folder without the suffix, ``/`` written as
  ``_`` (``p01/ct.nii.gz`` -> ``p01_ct``), so ids stay the same when files are added;
- each DICOM series, told apart by SeriesInstanceUID: a folder holding two series gives two cases (the
  case then carries ``series_uid``); the id is :func:`~bundles.io.dicom_series.dicom_series_case_id`
  (patient, description, end of the UID).

Other files (reports, JSON, ``.dcm`` files that are not images) are ignored. Reading every header costs
one small read per DICOM file, without pixels.
"""

from __future__ import annotations

import os
import re
from os import PathLike
from pathlib import Path
from typing import Any

from bundles.errors import BundleInputError
from bundles.io.dicom_series import dicom_series_case_id
from bundles.io.formats import IMAGE_SUFFIXES
from bundles.io.validation import read_dicom_image_header

__all__ = ["find_cases", "case_id_from_path"]


def case_id_from_path(path: Path) -> str:
    """File name without its image suffix (``ct.nii.gz`` -> ``ct``), or the folder's name; characters
    outside ``[A-Za-z0-9._-]`` become ``_``."""
    name = path.name
    for suffix in (*IMAGE_SUFFIXES, ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "case"


def _file_case(path: Path, root: Path) -> dict[str, Any]:
    relative = path.relative_to(root)
    parts = [*relative.parts[:-1], case_id_from_path(path)]
    return {"image": str(path), "id": "_".join(case_id_from_path(Path(p)) for p in parts)}


def _series_cases(folder: Path, file_names: list[str]) -> list[dict[str, Any]]:
    """One case per SeriesInstanceUID among the DICOM images directly in ``folder``."""
    uids: list[str] = []
    for name in file_names:
        header = read_dicom_image_header(folder / name)
        if header is not None and (uid := str(header.get("SeriesInstanceUID", ""))) not in uids:
            uids.append(uid)
    if len(uids) == 1:  # the usual folder of one series: read as a folder, as a single given image is
        return [{"image": str(folder), "id": dicom_series_case_id(folder)}]
    return [{"image": str(folder), "series_uid": uid, "id": dicom_series_case_id(folder, uid)} for uid in sorted(uids)]


def find_cases(input_dir: str | PathLike) -> list[dict[str, Any]]:
    """The cases below ``input_dir`` as case dicts (``image``, ``id``, and ``series_uid`` where a folder holds
    several series), in sorted walk order.

    Raises:
        BundleInputError: ``input_dir`` is missing, is a file, or holds no image file and no DICOM series.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise BundleInputError(root, "is a file; --input_dir takes a folder of scans" if root.exists() else "input folder not found")
    cases: list[dict[str, Any]] = []
    for current, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        folder = Path(current)
        names = sorted(n for n in names if not n.startswith("."))
        images = [n for n in names if n.lower().endswith(IMAGE_SUFFIXES)]
        cases += [_file_case(folder / n, root) for n in images]
        others = [n for n in names if n not in images]
        if others:
            cases += _series_cases(folder, others)
    if not cases:
        raise BundleInputError(root, "holds no image (NIfTI, NRRD, MHA/MHD) and no DICOM series, at any depth")
    return cases
