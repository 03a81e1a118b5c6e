"""Turning a bundle's ``input_dict`` into a list of cases.

Accepted forms (``--input_dict`` on the command line):

- one image: ``{'image': 'ct.nii.gz', 'prompts': ['liver'], 'modality': 'ct'}`` (a DICOM series folder too);
- several images sharing prompts and modality: ``{'image': ['a.nii.gz', 'b.nii.gz'], ...}``;
- a folder of image files (NIfTI, NRRD, MHA): ``{'image': 'scans/', ...}``, one case per file; a folder
  without such files is taken as one DICOM series;
- a cohort folder (``--input_dir scans/``, every image file and DICOM series below it, see
  :mod:`bundles.io.case_folder`) with the fields every case shares in ``input_dict``
  (``{'prompts': [...], 'modality': 'ct'}``);
- a case list: ``{'cases': 'cases.jsonl'}`` (or ``.json`` holding a list, or the list itself:
  ``{'cases': [{'image': 'a.nii.gz'}, ...]}``); each case may set its own
  ``image``, ``prompts``, ``modality``, ``id``, ``frame`` (the volume of a 4D image), ``series_uid`` (the
  series to read from a DICOM folder holding several), and for evaluation
  ``mask`` + ``legend`` (label value -> term), ``dataset``; missing fields fall back to the top-level ones.

``prompts`` are opaque here: each family checks them (text terms for SAT, clicks, boxes, none for a
prompt-free model) with its own prompt check before any model loads. ``modality`` is optional here too;
families that need it (SAT) require it in their check.

Relative paths inside a case file are relative to that file's folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from bundles.errors import BundleError, BundleInputError, ConfigurationError
from bundles.io.case_folder import case_id_from_path, find_cases
from bundles.io.dicom_series import dicom_series_case_id
from bundles.io.formats import IMAGE_SUFFIXES

__all__ = ["Case", "parse_cases", "case_id_from_path"]


@dataclass
class Case:
    """One image to segment, with its prompts and (for evaluation) its reference mask.

    ``prompts`` is whatever the case gave (``None`` when absent), checked by the family; ``modality`` is the
    given spelling (``None`` when absent; see :func:`bundles.io.modality.normalize_modality`). ``fields``
    holds every key the case gave (top-level defaults merged in), for families whose prompts come under
    other names (SAM-Med3D: ``points``, ``point_labels``, ``points_space``, ``objects``).
    """

    id: str
    image: Path
    prompts: Any
    modality: str | None
    mask: Path | None = None
    legend: dict[int, str] = field(default_factory=dict)
    dataset: str = ""
    frame: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    series_uid: str | None = None


def _default_id(image: Path, series_uid: str | None) -> str:
    """A DICOM series is named from its headers (patient, description, UID), never from a folder called
    ``dicom``; anything else (or a folder whose headers cannot be read: reported later) by its file name."""
    if image.is_dir():
        try:
            return dicom_series_case_id(image, series_uid)
        except BundleError:
            pass
    return case_id_from_path(image)


def _image_files(folder: Path) -> list[Path]:
    """The image files (by suffix, not DICOM) of a flat folder of images, sorted; empty otherwise.

    A folder with sub-folders is never expanded: it may be a DICOM series' parent that also holds other
    files (a label map beside ``dicom/``), which the reader then reports ("the series is in <subfolder>").
    """
    if not folder.is_dir() or any(p.is_dir() for p in folder.iterdir()):
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))


def _read_case_file(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise BundleInputError(path, "case list not found")
    try:
        text = path.read_text()
        if path.suffix == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = json.loads(text)
    except (OSError, json.JSONDecodeError) as e:
        raise BundleInputError(path, f"case list is not valid JSON/JSONL ({e})") from e
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise BundleInputError(path, "case list must be a JSON list of objects or one JSON object per line")
    base = path.parent
    for item in items:
        for key in ("image", "mask"):
            if key in item and not Path(item[key]).is_absolute():
                item[key] = str(base / item[key])
    return [dict(i) for i in items]


def parse_cases(input_dict: Mapping[str, Any], input_dir: str | PathLike | None = None) -> list[Case]:
    """Expand ``input_dict`` (see module docstring), or the folder ``input_dir`` with ``input_dict`` as every
    case's fields, into cases with unique ids.

    Raises:
        ConfigurationError: no image given, a case without ``image``, or ``input_dir`` together with
            ``input_dict``'s ``image`` / ``cases``.
        BundleInputError: unreadable case list; ``input_dir`` missing or without images.
    """
    if not isinstance(input_dict, Mapping):
        raise ConfigurationError(f"input_dict must be a dict such as {{'image': 'ct.nii.gz', ...}}, got {input_dict!r}")
    defaults = {k: v for k, v in input_dict.items() if k not in ("cases", "image")}
    if input_dir:
        if "cases" in input_dict or "image" in input_dict:
            raise ConfigurationError(
                f"--input_dir {input_dir} and input_dict's {'cases' if 'cases' in input_dict else 'image'} both name the"
                " input; give one (with --input_dir, input_dict holds only what every case shares, e.g. prompts)"
            )
        raw = find_cases(input_dir)
    elif "cases" in input_dict:
        listed = input_dict["cases"]
        if isinstance(listed, (list, tuple)):
            if not all(isinstance(item, Mapping) for item in listed):
                raise ConfigurationError(f"input_dict 'cases' must list dicts such as {{'image': 'ct.nii.gz'}}, got {listed!r}")
            raw = [dict(item) for item in listed]
        elif isinstance(listed, (str, Path)):
            raw = _read_case_file(Path(listed))
        else:
            raise ConfigurationError(f"input_dict 'cases' must be a .jsonl / .json file or a list of cases, got {listed!r}")
    elif "image" in input_dict:
        images = input_dict["image"]
        listed = [Path(p) for p in (images if isinstance(images, (list, tuple)) else [images])]
        raw = [{"image": str(f)} for p in listed for f in (_image_files(p) or [p])]
    else:
        raise ConfigurationError(
            "input_dict needs 'image' (a file, DICOM folder or list of them) or 'cases' (a .jsonl), or give a folder with --input_dir"
        )

    cases: list[Case] = []
    seen: dict[str, int] = {}
    for item in raw:
        merged = {**defaults, **item}
        if "image" not in merged:
            raise ConfigurationError(f"case {item} has no 'image'")
        image = Path(merged["image"])
        legend = {int(k): str(v) for k, v in (merged.get("legend") or {}).items()}
        prompts = merged.get("prompts", merged.get("label"))
        modality = merged.get("modality")
        series_uid = None if merged.get("series_uid") is None else str(merged["series_uid"])
        case_id = str(merged.get("id") or _default_id(image, series_uid))
        seen[case_id] = seen.get(case_id, 0) + 1
        if seen[case_id] > 1:
            case_id = f"{case_id}_{seen[case_id]}"
        mask = Path(merged["mask"]) if merged.get("mask") else None
        frame = None if merged.get("frame") is None else int(merged["frame"])
        cases.append(
            Case(case_id, image, prompts, None if modality is None else str(modality), mask, legend,
                 str(merged.get("dataset", "")), frame, dict(merged), series_uid)
        )
    return cases
