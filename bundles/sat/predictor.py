"""SAT's predictor for the core segmentation job: query embeddings for the case's terms, then the
text-prompted inferer, masks on the input's own grid."""

from __future__ import annotations

import numpy as np
from monai.data import MetaTensor

from bundles.engines.stage_times import stage
from bundles.io.cases import Case
from bundles.io.grid import ImageGrid
from bundles.sat.inferer import TextPromptedInferer
from bundles.sat.prompts import TextPrompts
from bundles.sat.query_cache import QueryProvider

__all__ = ["TextPromptedPredictor"]


class TextPromptedPredictor:
    """The :class:`bundles.engines.segmentation_job.Predictor` of SAT.

    Args:
        inferer: whole-image inferer returning masks on the input grid.
        query_provider: ``(terms, modality) -> (Q, D)`` query embeddings (normally :class:`CachedQueries`).
    """

    def __init__(self, inferer: TextPromptedInferer, query_provider: QueryProvider):
        self.inferer = inferer
        self.query_provider = query_provider

    def __call__(self, image: MetaTensor, grid: ImageGrid, case: Case, prompts: TextPrompts) -> tuple[np.ndarray, list[str]]:
        """Masks ``(Q, *grid.shape)`` (bool) for the Q terms of ``prompts``, and the terms."""
        with stage("queries"):
            queries = self.query_provider(prompts.terms, prompts.modality)
        return self.inferer(image, grid, queries, prompts.modality), list(prompts.terms)
