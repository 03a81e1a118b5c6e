"""The MONAI Label app serving the bundles (its folder: ``deploy/monailabel/``; start it with ``tools/serve.py``).

Options (MONAI Label ``--conf key value``; ``tools/serve.py`` sets them from its flags):

- ``models``: comma-separated bundles to serve (default: each bundle (:func:`bundles.bundle_configs.bundle_names`)
  whose weights are in its ``models/``); ``<bundle>_model_dir``: another weights folder (e.g. a model trained
  here). A bundle's ``inference.json`` names its task (config id ``serving_task``, a callable
  ``(served, conf) -> InferTask``) and its ``train.json`` how ``/train`` hands it cases (``serving_train_data``):
  this app keeps no table of bundles;
- ``device``: ``auto`` (CUDA when present), ``cpu``, ``cuda:N``;
- ``max_sessions`` / ``session_idle_seconds``: the click sessions kept per interactive model;
- ``runs_dir``: where ``/train`` runs go (default ``<app>/runs``); ``tracking_uri``: an MLflow server for
  them (default SQLite in each run folder); ``train_steps``: steps when a request gives none;
- ``workers``, ``max_clicks``, ``max_prompts``, ``max_train_steps``, ``max_trainings``: what one request may
  ask (:class:`bundles.serving.limits.RequestLimits`).

Studies: a folder (MONAI Label's local datastore) or a DICOMweb URL (:mod:`bundles.serving.archive`).

An unknown model is answered 404, a bad prompt 422 (:mod:`bundles.serving.infer_task`); the server goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

from bundles.bundle_configs import bundle_dir, bundle_names
from bundles.bundle_declarations import declaration
from bundles.engines.loaded_bundle import LoadedBundle
from bundles.errors import ConfigurationError
from bundles.serving.archive import archive_datastore
from bundles.serving.limits import RequestLimits
from bundles.serving.train_task import BundleTrain

__all__ = ["BundlesApp", "served_models", "model_dir_of"]

logger = logging.getLogger(__name__)


def model_dir_of(bundle: str, conf: dict[str, str]) -> Path:
    """The weights folder of ``bundle``: ``--conf <bundle>_model_dir``, else the bundle's ``models/``."""
    return Path(conf.get(f"{bundle}_model_dir") or bundle_dir(bundle) / "models")


def served_models(conf: dict[str, str]) -> list[str]:
    """The bundles ``conf`` asks for, or every bundle whose weights are present.

    Raises:
        ConfigurationError: an unknown bundle name.
    """
    if conf.get("models"):
        names = [n.strip() for n in conf["models"].split(",") if n.strip()]
        known = bundle_names()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigurationError(f"models: unknown bundle(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        return names
    return [b for b in bundle_names() if not declaration(b).missing_weights(model_dir_of(b, conf))]


class BundlesApp(MONAILabelApp):
    """Every served bundle as an infer task and a train task of the same name."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]):
        self.models = served_models(conf or {})
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="medseg-bundles",
                         description=f"Segmentation foundation models as MONAI bundles: {', '.join(self.models)}", version="0.1.0")

    def init_infers(self) -> dict[str, InferTask]:
        device = self.conf.get("device", "auto")
        tasks = {}
        for bundle in self.models:
            served = LoadedBundle(bundle, model_dir_of(bundle, self.conf), device)
            tasks[bundle] = served.value("serving_task")(served, self.conf)
            logger.info("serving %s from %s", bundle, served.model_dir)
        return tasks

    def init_trainers(self) -> dict[str, TrainTask]:
        runs = Path(self.conf.get("runs_dir") or Path(self.app_dir) / "runs")
        steps = int(self.conf.get("train_steps", 200))
        limits = RequestLimits.from_conf(self.conf)
        return {b: BundleTrain(b, model_dir_of(b, self.conf), runs, self.conf.get("tracking_uri") or None, steps, limits)
                for b in self.models}

    def init_remote_datastore(self) -> Datastore:
        """A DICOMweb archive (``--studies http(s)://host/dicom-web``) whose saved labels become DICOM-SEG
        (:mod:`bundles.serving.archive`); MONAI Label's own would download dcmqi at start-up."""
        return archive_datastore(self.studies)

    def infer(self, request: dict[str, Any], datastore=None) -> dict[str, Any]:
        """MONAI Label's infer, with 404 naming the served models for an unknown one."""
        model = request.get("model")
        if model not in self._infers:
            raise HTTPException(404, f"unknown model {model!r}; this server serves {', '.join(self._infers) or 'none'}")
        return super().infer(request, datastore)

    def train(self, request: dict[str, Any]) -> Any:
        """MONAI Label's train, with 404 naming the served models for an unknown one."""
        model = request.get("model")
        if model not in self._trainers:
            raise HTTPException(404, f"unknown model {model!r}; this server trains {', '.join(self._trainers) or 'none'}")
        return super().train(request)
