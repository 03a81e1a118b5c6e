"""The MONAI Label infer task of a bundle whose request is one case: the bundle's prompt check and predictor.

A family subclasses :class:`CaseInfer` and says how a request becomes the case's fields
(:meth:`CaseInfer.case_fields`, e.g. SAT: ``{'prompts': [...], 'modality': 'ct'}``); reading, checking and
predicting are the core's :func:`bundles.engines.predict_case.predict_case` (as for :func:`bundles.segment`),
the answer file :func:`bundles.serving.answer_file.write_answer`, the same for every family. Errors a client can fix come back as HTTP
4xx with the project's one-line message (:func:`http_errors`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from bundles.engines.loaded_bundle import LoadedBundle
from bundles.engines.predict_case import predict_case
from bundles.errors import BundleError, BundleInputError, CheckpointError, PromptError
from bundles.serving.answer_file import write_answer
from bundles.serving.limits import RequestLimits

__all__ = ["CaseInfer", "http_errors", "image_of"]

logger = logging.getLogger(__name__)


@contextmanager
def http_errors(model: str) -> Iterator[None]:
    """Turn the project's errors into HTTP errors with their one-line message: bad prompts or input 422,
    missing weights 503, other project errors 500. Unexpected exceptions pass through (MONAI Label answers 500)."""
    try:
        yield
    except (PromptError, BundleInputError) as e:
        logger.warning("%s: refused request: %s", model, e)
        raise HTTPException(status_code=422, detail=f"{model}: {e}") from e
    except CheckpointError as e:
        raise HTTPException(status_code=503, detail=f"{model}: {e}") from e
    except BundleError as e:
        raise HTTPException(status_code=500, detail=f"{model}: {e}") from e


def image_of(request: Mapping[str, Any]) -> str:
    """The image path MONAI Label put in the request (a datastore image or an upload)."""
    image = request.get("image")
    if not isinstance(image, str) or not os.path.exists(image):
        raise PromptError(f"no readable image in the request (got {str(image)[:120]!r}); give an image id of the datastore or upload a file")
    return image


class CaseInfer(InferTask):
    """A bundle that answers each request with its configs' prompt check and predictor.

    Args:
        served: the bundle (:class:`LoadedBundle`).
        type: MONAI Label's task type (``segmentation``; ``deepgrow`` makes Slicer and OHIF show click tools).
        labels: what the clients list (names, or name -> index for OHIF's class picker).
        dimension: 3 (volumes; 2D models still take whole volumes here, slice by slice).
        description: shown by the clients.
        limits: the server's bounds on one request (clicks, prompts).
    """

    def __init__(self, served: LoadedBundle, *, type: str | InferType, labels: Sequence[str] | Mapping[str, int],
                 dimension: int, description: str, limits: RequestLimits):
        super().__init__(type=type, labels=labels, dimension=dimension, description=description)
        self.served = served
        self.limits = limits

    def is_valid(self) -> bool:
        return True

    def case_fields(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The case fields (besides ``image``) a request asks for, read with
        :mod:`bundles.serving.request_values` (never a request value as it is)."""
        raise NotImplementedError

    def answer_values(self, request: Mapping[str, Any], names: Sequence[str]) -> list[int] | None:
        """The label value of each answered class in the answer file; ``None``: ``1..K`` in the order of
        ``names`` (a family answering in other values, e.g. SAT's label indices for OHIF, overrides this)."""
        return None

    def __call__(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        model = str(request.get("model", self.served.bundle))
        with http_errors(model):
            done = predict_case(self.served, {"image": image_of(request), **self.case_fields(request)})
            values = self.answer_values(request, done.names) or list(range(1, len(done.names) + 1))
            path = write_answer(done.masks, done.grid, request, values)
        total_s = done.read_seconds + done.predict_seconds
        return path, {"label_names": dict(zip(done.names, values)),
                      "latencies": {"pre": round(done.read_seconds, 3), "infer": round(done.predict_seconds, 3), "total": round(total_s, 3)}}
