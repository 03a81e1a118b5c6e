"""The MONAI Label infer task of a bundle whose request is one case: the bundle's prompt check and predictor.

A family subclasses :class:`CaseInfer` and says how a request becomes the case's fields
(:meth:`CaseInfer.case_fields`, e.g. SAT: ``{'prompts': [...], 'modality': 'ct'}``); reading, checking,
predicting and the result file are the same for every family. Errors a client can fix come back as HTTP
4xx with the project's one-line message (:func:`http_errors`).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import nibabel as nib
import numpy as np
from fastapi import HTTPException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from bundles.errors import BundleError, BundleInputError, CheckpointError, PromptError
from bundles.io.atomic import atomic_write
from bundles.io.cases import parse_cases
from bundles.io.grid import ImageGrid
from bundles.io.readers import read_image
from bundles.io.writers import label_image, label_map
from bundles.serving.limits import RequestLimits
from bundles.serving.served_bundle import ServedBundle

__all__ = ["CaseInfer", "http_errors", "write_label_file", "image_of"]

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


@functools.cache
def _results_dir() -> str:
    """This server's own folder for result files, made once per process in the temp folder.

    MONAI Label's client (3D Slicer's plugin) saves an answer as ``<its temp folder>/<the server's file name>``
    while the server deletes its file after sending: with both in the same temp folder of one machine, the
    server deleted the client's copy (results lost). In a folder of its own the server deletes only its own.
    The folder is removed when the process exits normally."""
    folder = tempfile.mkdtemp(prefix="medseg-serve-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def write_label_file(masks: np.ndarray, grid: ImageGrid) -> str:
    """A temporary NIfTI of the multi-label map of bool ``masks`` ``(K, X, Y, Z)`` on ``grid`` (values 1..K),
    in :func:`_results_dir`, written completely before its name is handed on; MONAI Label deletes it once sent."""
    handle, path = tempfile.mkstemp(suffix=".nii.gz", prefix="medseg-", dir=_results_dir())
    os.close(handle)
    atomic_write(path, lambda tmp: nib.save(label_image(label_map(masks), grid), str(tmp)))
    return path


class CaseInfer(InferTask):
    """A bundle that answers each request with its configs' prompt check and predictor.

    Args:
        served: the bundle (:class:`ServedBundle`).
        type: MONAI Label's task type (``segmentation``; ``deepgrow`` makes Slicer and OHIF show click tools).
        labels: what the clients list (names, or name -> index for OHIF's class picker).
        dimension: 3 (volumes; 2D models still take whole volumes here, slice by slice).
        description: shown by the clients.
        limits: the server's bounds on one request (clicks, prompts).
    """

    def __init__(self, served: ServedBundle, *, type: str | InferType, labels: Sequence[str] | Mapping[str, int],
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

    def __call__(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        model = str(request.get("model", self.served.bundle))
        with http_errors(model):
            started = time.perf_counter()
            (case,) = parse_cases({"image": image_of(request), **self.case_fields(request)})
            prompts = self.served.component("prompt_check")(case)
            predictor = self.served.component("predictor")
            image, grid = read_image(case.image, frame=case.frame, allow_2d=True)
            read_s = time.perf_counter() - started
            with self.served.model_lock:
                masks, names = predictor(image, grid, case, prompts)
            path = write_label_file(np.asarray(masks, dtype=bool), grid)
        total_s = time.perf_counter() - started
        return path, {"label_names": {name: i + 1 for i, name in enumerate(names)},
                      "latencies": {"pre": round(read_s, 3), "infer": round(total_s - read_s, 3), "total": round(total_s, 3)}}
