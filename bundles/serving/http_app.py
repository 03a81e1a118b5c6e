"""The server's HTTP app: MONAI Label's own FastAPI app (``monailabel.app:app``) with three changes, started by
``tools/serve.py`` as ``monailabel.main start_server --uvicorn_app bundles.serving.http_app:app``.

1. **Work off the event loop.** MONAI Label 0.8.5 computes ``/infer``, ``/train``, ``/datastore`` and
   ``/session`` requests inside ``async`` endpoints, on the event loop, so one slow inference holds up every
   other request (a click waits behind a whole-scan SAT run). Here each of those routes runs in a worker
   thread; at most ``workers`` (server option) compute at once, the rest wait their turn while the loop keeps
   answering. Requests on one click session are still taken one at a time (the session's lock), and requests
   on one model share its model lock.
2. **Malformed requests are 4xx.** A ``params`` / ``info`` form field that is not a JSON object, an inference
   request without an image, an unknown image, label or model (MONAI Label's own errors: 404 / 422), a dataset
   archive of an empty datastore, more clicks or prompts than the server's bounds, a training over
   ``max_train_steps`` or beyond ``max_trainings`` at once: one line, 422 / 429, never 500 (a form field over
   1 MiB: Starlette's 400)
   (:mod:`bundles.serving.limits`). A request's values are data: they go to the components, never to a config.
3. **SIGTERM (or Ctrl-C) stops the server within seconds**, also while a request runs: the request is
   abandoned (result files are written atomically, so nothing is half-written), trainings the server started
   are terminated, and the process exits after :data:`GRACE_SECONDS` if uvicorn has not finished by then.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, APIRouter
from monailabel.app import app
from monailabel.config import settings
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException, MONAILabelError, MONAILabelException
from monailabel.interfaces.utils.app import app_instance
from monailabel.utils.async_tasks.utils import background_processes

from bundles.errors import BundleInputError, PromptError
from bundles.serving.limits import RequestLimits, request_params
from bundles.serving.train_task import RUNNING

__all__ = ["app", "GRACE_SECONDS"]

logger = logging.getLogger(__name__)

#: Seconds between SIGTERM and the forced exit of a server still busy with a request.
GRACE_SECONDS = 3.0

_limits = RequestLimits.from_conf(settings.MONAI_LABEL_APP_CONF or {})
_workers = anyio.CapacityLimiter(_limits.workers)
_trainings = threading.BoundedSemaphore(_limits.max_trainings)

#: (path, method) of MONAI Label's routes that compute: run in worker threads, their JSON fields checked.
OFF_LOOP = {("/datastore/dataset", "GET"), ("/infer/{model}", "POST"), ("/train/{model}", "POST"), ("/train/", "POST"), ("/datastore/", "PUT"),
            ("/datastore/image", "PUT"), ("/datastore/label", "PUT"), ("/datastore/image/info", "PUT"),
            ("/datastore/label/info", "PUT"), ("/session/", "PUT"), ("/batch/infer/{model}", "POST")}


def _check_request(path: str, kwargs: dict[str, Any]) -> None:
    """Refuse a malformed request before any work (raises PromptError, answered 422; LabelNotFoundException, 404)."""
    for field in ("params", "info"):
        if isinstance(kwargs.get(field), str):
            request_params(kwargs[field], field)
    if path == "/infer/{model}" and not (kwargs.get("image") or kwargs.get("file") or kwargs.get("session_id")):
        raise PromptError("no image: give an image id (?image=...), a session_id, or upload a file")
    if path.startswith("/train/") and isinstance(kwargs.get("params"), dict):
        _limits.check_train_steps(kwargs["params"].get("max_steps"))
    if path == "/datastore/dataset" and not app_instance().datastore().get_labeled_images():
        raise LabelNotFoundException("no image has a final label yet: nothing to put in a dataset archive")


def _run(endpoint: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """MONAI Label's endpoint, in this worker thread (a coroutine gets an event loop of its own)."""
    result = endpoint(**kwargs)
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


def off_loop(path: str, endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` checked (:func:`_check_request`) and computed in a worker thread; the project's errors a
    client can fix become 422 with their one line (MONAI Label's own errors: see :func:`_monai_label_error`)."""

    @functools.wraps(endpoint)
    async def guarded(**kwargs: Any) -> Any:
        try:
            _check_request(path, kwargs)
            if path.startswith("/train/") and kwargs.get("run_sync"):
                if not _trainings.acquire(blocking=False):
                    raise HTTPException(429, f"{_limits.max_trainings} training(s) already running; this server runs at most"
                                             f" {_limits.max_trainings} at once (server option --max_trainings)")
                try:
                    return await anyio.to_thread.run_sync(_run, endpoint, kwargs, abandon_on_cancel=True)
                finally:
                    _trainings.release()
            return await anyio.to_thread.run_sync(_run, endpoint, kwargs, limiter=_workers, abandon_on_cancel=True)
        except (PromptError, BundleInputError) as e:
            raise HTTPException(422, str(e)) from e

    return guarded


def _routers(router: APIRouter) -> Iterator[APIRouter]:
    """``router`` and every router included in it (FastAPI >= 0.160 keeps included routers as they are)."""
    for route in list(router.routes):
        included = getattr(route, "original_router", None)
        if isinstance(included, APIRouter):
            yield from _routers(included)
    yield router


def _reroute(application: FastAPI) -> None:
    """Replace the routes of :data:`OFF_LOOP` by their :func:`off_loop` versions (same paths, parameters, docs).

    Raises:
        RuntimeError: a route of :data:`OFF_LOOP` was not found (another MONAI Label version): the server
            must not start with routes that block the event loop.
    """
    replaced = set()
    for router in _routers(application.router):
        for route in list(router.routes):
            if not isinstance(route, APIRoute):
                continue
            for method in sorted(route.methods & {m for p, m in OFF_LOOP if p == route.path}):
                router.routes.remove(route)
                own_path = route.path[len(router.prefix):] if router.prefix and route.path.startswith(router.prefix) else route.path
                router.add_api_route(own_path, off_loop(route.path, route.endpoint), methods=[method], summary=route.summary,
                                     include_in_schema=route.include_in_schema, deprecated=route.deprecated, tags=route.tags,
                                     responses=route.responses)
                replaced.add((route.path, method))
    if replaced != OFF_LOOP:
        raise RuntimeError(f"MONAI Label routes not found: {sorted(OFF_LOOP - replaced)}; this app needs monailabel 0.8.5")


async def _monai_label_error(request: Request, error: MONAILabelException) -> JSONResponse:
    """MONAI Label's own errors as HTTP answers: a missing image or label 404, invalid input 422, the rest 500."""
    status = 404 if isinstance(error, (ImageNotFoundException, LabelNotFoundException)) else \
        422 if error.error == MONAILabelError.INVALID_INPUT else 500
    return JSONResponse({"detail": str(error.msg)}, status_code=status)


def _drop_unservable_routes(application: FastAPI) -> None:
    """Routes that cannot work on this machine answer 404 instead of failing: ``/logs/gpu`` without
    ``nvidia-smi`` (a CPU server)."""
    if shutil.which("nvidia-smi") is None:
        for router in _routers(application.router):
            for route in [r for r in router.routes if isinstance(r, APIRoute) and r.path == "/logs/gpu"]:
                router.routes.remove(route)


def _stop_children() -> None:
    """Terminate the trainings this server started (its own and MONAI Label's background ones)."""
    for process in [*RUNNING, *(p for tasks in background_processes.values() for p in tasks.values())]:
        if process.poll() is None:
            process.terminate()


def _prompt_exit_on(signum: int) -> None:
    """Chain a handler to uvicorn's for ``signum``: stop the trainings, let uvicorn shut down, exit after
    :data:`GRACE_SECONDS` whatever still runs."""
    previous = signal.getsignal(signum)

    def handler(sig: int, frame: Any) -> None:
        logger.info("signal %d: stopping (requests still running are abandoned after %.0f s)", sig, GRACE_SECONDS)
        _stop_children()
        timer = threading.Timer(GRACE_SECONDS, os._exit, (0,))
        timer.daemon = True
        timer.start()
        if callable(previous):
            previous(sig, frame)

    signal.signal(signum, handler)


_lifespan = app.router.lifespan_context


@asynccontextmanager
async def _lifespan_with_prompt_exit(application: FastAPI) -> AsyncIterator[None]:
    if threading.current_thread() is threading.main_thread():  # uvicorn has installed its handlers by now
        for signum in (signal.SIGTERM, signal.SIGINT):
            _prompt_exit_on(signum)
    async with _lifespan(application):
        yield


_reroute(app)
_drop_unservable_routes(app)
app.add_exception_handler(MONAILabelException, _monai_label_error)
app.router.lifespan_context = _lifespan_with_prompt_exit
