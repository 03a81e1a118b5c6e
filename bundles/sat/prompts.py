"""SAT's prompts: text terms of its vocabulary for one modality, checked per case before any model loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bundles.errors import PromptError
from bundles.io.cases import Case
from bundles.io.modality import normalize_modality
from bundles.sat.vocabulary import SATVocabulary

__all__ = ["TextPrompts", "TextPromptCheck"]


@dataclass(frozen=True)
class TextPrompts:
    """A case's checked prompts: canonical ``modality`` and vocabulary ``terms`` (normalised, in order)."""

    modality: str
    terms: list[str]


class TextPromptCheck:
    """The :class:`bundles.engines.segmentation_job.PromptCheck` of SAT.

    A case needs ``modality`` and text ``prompts`` (a string or a list); an evaluation case with a ``legend``
    and no prompts is prompted with the legend's terms.

    Args:
        vocabulary: SAT's vocabulary (:func:`bundles.sat.vocabulary.load_sat_vocabulary`).
        allow_free_text: let terms outside the vocabulary through (for encoders that generalise).
    """

    def __init__(self, vocabulary: SATVocabulary, allow_free_text: bool = False):
        self.vocabulary = vocabulary
        self.allow_free_text = allow_free_text

    def __call__(self, case: Case) -> TextPrompts:
        """Raises:
            PromptError: no prompts, no or unknown modality, or a term the vocabulary lacks (with suggestions).
        """
        prompts: Any = case.prompts
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts and case.legend:
            prompts = list(dict.fromkeys(case.legend[k] for k in sorted(case.legend)))
        if not prompts:
            raise PromptError(f"{case.image}: no prompts given; pass e.g. 'prompts': ['liver', 'spleen']")
        if case.modality is None:
            raise PromptError(f"{case.image}: no modality given; pass 'modality': 'ct', 'mri' or 'pet'")
        if not isinstance(prompts, (list, tuple)):
            raise PromptError(f"{case.image}: prompts must be text terms such as ['liver', 'spleen'], got {prompts!r}")
        modality = normalize_modality(case.modality)
        return TextPrompts(modality, self.vocabulary.match(list(prompts), modality, allow_free_text=self.allow_free_text))

    def report_columns(self, name: str, prompts: TextPrompts) -> dict[str, Any]:
        """The body region of term ``name`` (SAT's vocabulary grouping), reported per region."""
        return {"region": self.vocabulary.region_of(name, prompts.modality)}
