"""SAM-Med3D in MONAI Label: a click model (``deepgrow``, so 3D Slicer and OHIF show their point tools)
whose second click on an image costs only the decoder.

Requests carry every click so far (MONAI Label is stateless): Slicer sends ``foreground`` / ``background``
voxel lists (taken in that order), OHIF ``points`` + ``point_labels``; ``label`` names the object
(default ``object``), ``client_id`` the client (default ``default``). Clicks are voxel indices ``[i, j, k]``
of the original image. Per client and image a :class:`bundles.sam_med3d.session.ClickSession` is kept
in a :class:`bundles.serving.session_pool.SessionPool`; when a request's clicks extend the session's
history only the new ones are decoded (as the model was trained, one click at a time, feeding back the
previous logits); otherwise the object's clicks are replayed from the first. The answer's ``session``
field says which happened.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from bundles.engines.loaded_bundle import LoadedBundle
from bundles.errors import PromptError
from bundles.io.readers import read_image
from bundles.sam_med3d.session import ClickSession
from bundles.serving import request_values
from bundles.serving.answer_file import write_answer
from bundles.serving.infer_task import http_errors, image_of
from bundles.serving.limits import RequestLimits
from bundles.serving.request_values import Click
from bundles.serving.session_pool import PooledSession, SessionPool

__all__ = ["ClickInfer", "infer_task"]


class ClickInfer(InferTask):
    """SAM-Med3D's MONAI Label task (see the module docstring).

    Args:
        served: the bundle (its ``session`` component gives the network and settings).
        max_sessions: sessions kept (each holds its image on the 1.5 mm grid and up to 4 window embeddings).
        idle_seconds: a session unused this long is dropped.
        limits: the server's bounds on one request (clicks).
    """

    def __init__(self, served: LoadedBundle, max_sessions: int = 4, idle_seconds: float = 600.0, limits: RequestLimits | None = None):
        super().__init__(type=InferType.DEEPGROW, labels=[], dimension=3,
                         description="SAM-Med3D: click inside (foreground) or outside (background) an object; each click refines it")
        self.served = served
        self.limits = limits or RequestLimits()
        self.pool: SessionPool[ClickSession] = SessionPool(self._new_session, max_sessions, idle_seconds)

    def is_valid(self) -> bool:
        return True

    def _new_session(self) -> ClickSession:
        return self.served.component("session").fresh()

    def __call__(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        model = str(request.get("model", self.served.bundle))
        with http_errors(model):
            started = time.perf_counter()
            image = image_of(request)
            clicks = request_values.clicks(request)
            self.limits.check_clicks(len(clicks))
            obj = request_values.text(request, "label", "object")
            client = request_values.text(request, "client_id", "default")
            modality = request_values.text(request, "modality", "ct")
            stat = os.stat(image)
            pooled = self.pool.get((client, os.path.realpath(image), stat.st_mtime_ns, modality))
            with pooled.lock, self.served.model_lock:
                added, replayed = self._apply(pooled, image, modality, obj, clicks)
                mask, grid = pooled.session.mask(obj), pooled.session.grid
            path = write_answer(mask[None], grid, request)  # a NIfTI, or the NRRD OHIF asks for
        return path, {"label_names": {obj: 1},
                      "session": {"new": pooled.created, "clicks_added": added, "replayed": replayed,
                                  "encodings": pooled.session.encodings},
                      "latencies": {"total": round(time.perf_counter() - started, 3)}}

    @staticmethod
    def _apply(pooled: PooledSession[ClickSession], image: str, modality: str, obj: str, clicks: list[Click]) -> tuple[int, bool]:
        """Bring ``obj``'s clicks in the session to ``clicks``; (clicks decoded, whether replayed from the first)."""
        session = pooled.session
        if "clicks" not in pooled.state:  # a new session (or one whose image failed to load)
            volume, grid = read_image(image)
            session.set_image(volume[0], grid, modality)
            pooled.state["clicks"] = {}
        history: list[Click] = pooled.state["clicks"].setdefault(obj, [])
        replayed = clicks[: len(history)] != history
        if replayed:
            session.reset(obj)
            history.clear()
        new = clicks[len(history):]
        try:
            for voxel, positive in new:
                session.add_click(np.asarray(voxel, dtype=np.float64), positive, obj)
                history.append((voxel, positive))
        except PromptError:
            session.reset(obj)  # no partial state: the next request replays its clicks from the first
            history.clear()
            raise
        return len(new), replayed


def infer_task(served: LoadedBundle, conf: Mapping[str, str]) -> ClickInfer:
    """The task of the app (``--conf max_sessions N``, ``--conf session_idle_seconds S``, the request bounds)."""
    return ClickInfer(served, int(conf.get("max_sessions", 4)), float(conf.get("session_idle_seconds", 600)), RequestLimits.from_conf(conf))
