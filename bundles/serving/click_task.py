"""The MONAI Label task of a click model (``deepgrow``, so 3D Slicer and OHIF show their point tools) whose
second click on an image costs only what the model's session makes it cost (e.g. its decoder).

Requests carry every click so far (MONAI Label is stateless): Slicer sends ``foreground`` / ``background``
voxel lists (taken in that order), OHIF ``points`` + ``point_labels``; ``label`` names the object
(default ``object``), ``client_id`` the client (default ``default``). Clicks are voxel indices ``[i, j, k]``
of the original image, read by :func:`bundles.serving.request_values.prompt_object` and checked by the one
reader of clicks (:func:`bundles.interactive.objects.read_objects`). Per client and image a
:class:`bundles.interactive.session.ClickSession` is kept in a :class:`bundles.serving.session_pool.SessionPool`;
when a request's clicks extend the session's history only the new ones are decoded (one click at a time,
as click models are trained); otherwise the object's clicks are replayed from the first. The answer's
``session`` field says which happened.

A family serves its click model with ``infer_task(served, conf)`` returning :func:`click_task` with its
session factory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from bundles.engines.loaded_bundle import LoadedBundle
from bundles.errors import PromptError
from bundles.interactive.objects import PromptedObject, read_objects
from bundles.interactive.session import ClickSession
from bundles.io.readers import read_image
from bundles.serving import request_values
from bundles.serving.answer_file import write_answer
from bundles.serving.infer_task import http_errors, image_of
from bundles.serving.limits import RequestLimits
from bundles.serving.session_pool import PooledSession, SessionPool

__all__ = ["ClickInfer", "click_task"]

Click = tuple[tuple[float, ...], bool]
"""A click: voxel coordinates of the original image and whether it is a foreground click."""


class ClickInfer(InferTask):
    """A click model's MONAI Label task (see the module docstring).

    Args:
        served: the bundle (its model lock is held while a session works).
        new_session: makes a session sharing the bundle's network (one per client and image).
        description: shown by the clients.
        max_sessions: sessions kept (each holds its prepared image and whatever the model caches).
        idle_seconds: a session unused this long is dropped.
        limits: the server's bounds on one request (clicks).
    """

    def __init__(self, served: LoadedBundle, new_session: Callable[[], ClickSession], description: str, max_sessions: int = 4,
                 idle_seconds: float = 600.0, limits: RequestLimits | None = None):
        super().__init__(type=InferType.DEEPGROW, labels=[], dimension=3, description=description)
        self.served = served
        self.limits = limits or RequestLimits()
        self.pool: SessionPool[ClickSession] = SessionPool(new_session, max_sessions, idle_seconds)

    def is_valid(self) -> bool:
        return True

    def __call__(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        model = str(request.get("model", self.served.bundle))
        with http_errors(model):
            started = time.perf_counter()
            image = image_of(request)
            fields = request_values.prompt_object(request)
            self.limits.check_clicks(len(fields["points"]))
            client = request_values.text(request, "client_id", "default")
            modality = request_values.text(request, "modality", "ct")
            stat = os.stat(image)
            pooled = self.pool.get((client, os.path.realpath(image), stat.st_mtime_ns, modality))
            with pooled.lock, self.served.model_lock:
                session = self._prepared(pooled, image, modality)
                (obj,) = read_objects({"objects": [fields]}, image, session.grid)
                added, replayed = self._apply(pooled, obj)
                mask, grid = session.mask(obj.name), session.grid
            path = write_answer(mask[None], grid, request)  # a NIfTI, or the NRRD OHIF asks for
        return path, {"label_names": {obj.name: 1},
                      "session": {"new": pooled.created, "clicks_added": added, "replayed": replayed,
                                  "encodings": session.encodings},
                      "latencies": {"total": round(time.perf_counter() - started, 3)}}

    @staticmethod
    def _prepared(pooled: PooledSession[ClickSession], image: str, modality: str) -> ClickSession:
        """The pooled session with ``image`` set (read and set once per session)."""
        if "clicks" not in pooled.state:  # a new session (or one whose image failed to load)
            volume, grid = read_image(image)
            pooled.session.set_image(volume[0], grid, modality)
            pooled.state["clicks"] = {}
        return pooled.session

    @staticmethod
    def _apply(pooled: PooledSession[ClickSession], obj: PromptedObject) -> tuple[int, bool]:
        """Bring ``obj``'s clicks in the session to those of the request; (clicks decoded, whether replayed
        from the first)."""
        session = pooled.session
        clicks: list[Click] = [(tuple(p), label == 1) for p, label in zip(obj.points.tolist(), obj.labels)]
        history: list[Click] = pooled.state["clicks"].setdefault(obj.name, [])
        replayed = clicks[: len(history)] != history
        if replayed:
            session.reset(obj.name)
            history.clear()
        new = clicks[len(history):]
        try:
            for voxel, positive in new:
                session.add_click(np.asarray(voxel, dtype=np.float64), positive, obj.name)
                history.append((voxel, positive))
        except PromptError:
            session.reset(obj.name)  # no partial state: the next request replays its clicks from the first
            history.clear()
            raise
        return len(new), replayed


def click_task(served: LoadedBundle, conf: Mapping[str, str], new_session: Callable[[], ClickSession], description: str) -> ClickInfer:
    """The click task of a bundle with the server's options (``--conf max_sessions N``,
    ``--conf session_idle_seconds S``, the request bounds)."""
    return ClickInfer(served, new_session, description, int(conf.get("max_sessions", 4)), float(conf.get("session_idle_seconds", 600)),
                      RequestLimits.from_conf(conf))
