"""The prompt check of click models for the per-case job: each case's objects and their clicks
(:func:`bundles.interactive.objects.read_objects`), checked against the image before any model loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bundles.interactive.objects import PromptedObject, read_objects
from bundles.io.cases import Case
from bundles.io.modality import normalize_modality
from bundles.io.readers import read_image

__all__ = ["ClickPrompts", "ClickPromptCheck"]


@dataclass(frozen=True)
class ClickPrompts:
    """A case's checked objects, in the order given, and its canonical modality (None when not given)."""

    objects: tuple[PromptedObject, ...]
    modality: str | None = None


class ClickPromptCheck:
    """The :class:`bundles.engines.segmentation_job.PromptCheck` of click models.

    Reads each image's grid to check the clicks fall inside it (and to map world points to voxels).

    Raises (from ``__call__``):
        PromptError: an unknown modality, or what :func:`~bundles.interactive.objects.read_objects` refuses
            (no clicks, malformed points, labels other than 0/1, points and labels of different lengths, a
            click outside the image, an unknown ``points_space``, duplicate object names).
    """

    def __call__(self, case: Case) -> ClickPrompts:
        modality = normalize_modality(case.modality) if case.modality else None
        _, grid = read_image(case.image, frame=case.frame)
        return ClickPrompts(read_objects(case.fields, str(case.image), grid), modality)

    def report_columns(self, name: str, prompts: ClickPrompts) -> dict[str, Any]:
        """The number of clicks the object got."""
        return {"clicks": next((len(o.labels) for o in prompts.objects if o.name == name), 0)}
