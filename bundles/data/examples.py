"""The real example scans shipped in ``data/examples`` (three TotalSegmentator test patients).

Patient A ``ct_abdomen_pelvis`` (NIfTI CT, 3 mm, RAS), patient B ``ct_dicom_series`` (20-slice DICOM CT,
LPS, reference mask stored LAS) and patient C ``mr_abdomen_small`` (NIfTI MR, LPS). The reference masks are
TotalSegmentator outputs (pseudo-labels, see ``data/examples/NOTICE``), not manual ground truth.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

import bundles
from bundles.data.totalsegmentator_names import totalsegmentator_terms
from bundles.errors import BundleInputError
from bundles.io.grid import ImageGrid
from bundles.io.reference_masks import load_reference_masks

__all__ = ["ExampleCase", "EXAMPLES", "examples_dir", "reference_masks"]


def examples_dir() -> Path:
    """``data/examples`` of the repository holding the installed ``bundles`` package.

    Raises:
        BundleInputError: the folder is missing (e.g. a wheel install without the repository's data).
    """
    folder = Path(bundles.__file__).resolve().parent.parent / "data" / "examples"
    if not (folder / "NOTICE").is_file():
        raise BundleInputError(folder, "example scans not found; they ship with the git repository (data/examples), not the wheel")
    return folder


@dataclass(frozen=True)
class ExampleCase:
    """One shipped patient.

    Attributes:
        key: ``"ct_abdomen_pelvis"``, ``"ct_dicom_series"`` or ``"mr_abdomen_small"``.
        folder_name: the case folder under ``data/examples``.
        image_name: the image file or DICOM folder, relative to ``folder``.
        reference_name: the TotalSegmentator label map, relative to ``folder``.
        labels_name: the id -> TotalSegmentator class JSON, relative to ``folder``.
        modality: ``"ct"`` or ``"mri"`` (SAT's modality prefixes).
    """

    key: str
    folder_name: str
    image_name: str
    reference_name: str
    labels_name: str
    modality: str

    @property
    def folder(self) -> Path:
        return examples_dir() / self.folder_name

    @property
    def image(self) -> Path:
        """Image file, or the DICOM series folder for patient B."""
        return self.folder / self.image_name

    @property
    def reference(self) -> Path:
        """Reference label map (NIfTI, label ids as values)."""
        return self.folder / self.reference_name

    @property
    def label_names(self) -> dict[int, str]:
        """Label id -> TotalSegmentator class name (the case's ``labels_*.json``)."""
        return {int(k): v for k, v in _load_json(self.folder / self.labels_name).items()}

    @property
    def sat_terms(self) -> dict[str, str]:
        """TotalSegmentator class name -> anatomical name (a SAT vocabulary term) for this case's modality
        (:func:`bundles.data.totalsegmentator_names.totalsegmentator_terms`)."""
        return totalsegmentator_terms(self.modality)

    @property
    def legend(self) -> dict[int, str]:
        """Label value of the reference mask -> SAT term, for every class SAT can prompt."""
        terms = self.sat_terms
        return {value: terms[name] for value, name in self.label_names.items() if name in terms}


@cache
def _load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


EXAMPLES: dict[str, ExampleCase] = {
    case.key: case
    for case in (
        ExampleCase("ct_abdomen_pelvis", "ct_abdomen_pelvis", "example_ct.nii.gz",
                    "example_seg_fast_force_split.nii.gz", "labels_total.json", "ct"),
        ExampleCase("ct_dicom_series", "ct_dicom_series", "dicom", "example_seg_dicom.nii.gz", "labels_total.json", "ct"),
        ExampleCase("mr_abdomen_small", "mr_abdomen_small", "example_mr_sm.nii.gz", "example_seg_mr.nii.gz",
                    "labels_total_mr.json", "mri"),
    )
}
"""The shipped patients by key: A ``ct_abdomen_pelvis``, B ``ct_dicom_series``, C ``mr_abdomen_small``."""


def reference_masks(case: ExampleCase | str, terms: Sequence[str], grid: ImageGrid) -> np.ndarray:
    """Reference masks of SAT ``terms`` for ``case``, resampled onto ``grid`` through world coordinates.

    A term covers every TotalSegmentator class mapped to it. The label map keeps its own grid (patient B's
    is stored LAS while the series is LPS) and is moved by :func:`bundles.io.reference_masks.load_reference_masks`
    (nearest neighbour, via the affines).

    Returns:
        bool array ``(len(terms), *grid.shape)``.

    Raises:
        KeyError: unknown case key.
        BundleInputError: a term has no reference label in this case (the available terms are listed).
    """
    case = EXAMPLES[case] if isinstance(case, str) else case
    return load_reference_masks(case.reference, case.legend, terms, grid)
