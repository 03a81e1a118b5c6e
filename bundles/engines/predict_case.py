"""One case through a bundle, in memory: case fields -> prompt check -> weights check -> read the image ->
predictor -> masks on the input's own grid. The server's infer tasks and :func:`bundles.segment` both run it,
so a request and a Python call cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bundles.engines.loaded_bundle import LoadedBundle
from bundles.io.cases import parse_cases
from bundles.io.grid import ImageGrid
from bundles.io.readers import read_image

__all__ = ["CasePrediction", "predict_case"]


@dataclass(frozen=True)
class CasePrediction:
    """What :func:`predict_case` gives back.

    Attributes:
        masks: bool ``(K, X, Y, Z)`` on :attr:`grid`, one per name.
        names: the ``K`` class or object names, in the order of the masks.
        grid: the input image's grid (shape, RAS affine; DICOM files for a series).
        read_seconds: checking the prompts and reading the image.
        predict_seconds: the predictor (loading the model on the first case, and waiting for it, included).
    """

    masks: np.ndarray
    names: list[str]
    grid: ImageGrid
    read_seconds: float
    predict_seconds: float


def predict_case(loaded: LoadedBundle, fields: Mapping[str, Any]) -> CasePrediction:
    """Predict one case of ``loaded``'s bundle.

    Args:
        loaded: the bundle with its weights.
        fields: the case (``image`` and the family's prompt fields: SAT ``prompts`` + ``modality``, SAM-Med3D
            ``points`` + ``point_labels`` or ``objects``, SAM-UNet ``objects`` with ``box`` / ``points``, SAMed
            none; ``frame`` for a 4D image).

    Raises:
        BundleInputError, PromptError: a bad image or prompt, before the model loads (prompts before weights).
        CheckpointError: missing or non-matching weights, before the image is read.
    """
    started = time.perf_counter()
    (case,) = parse_cases(dict(fields))
    prompts = loaded.component("prompt_check")(case)
    loaded.ensure_weights()
    image, grid = read_image(case.image, frame=case.frame, allow_2d=True)
    read_s = time.perf_counter() - started
    predictor = loaded.component("predictor")  # the model loads here, for the first case only
    with loaded.model_lock:
        masks, names = predictor(image, grid, case, prompts)
    return CasePrediction(np.asarray(masks, dtype=bool), list(names), grid, read_s, time.perf_counter() - started - read_s)
