"""``/train/<model>`` of the app: the bundle's own ``configs/train.json`` on the datastore's final labels.

Every datastore image with a ``final`` label whose label names are known becomes a training case
(``{image, mask, legend, modality}``), handed to the bundle in its own form by the ``serving_train_data``
hook its ``train.json`` names (:mod:`bundles.serving.train_data`: a case list by default, SAM-UNet's
SA-Med2D folder). Label names come from what
the clients store with a label: ``label_names`` (name -> value, as this app's answers and OHIF give them)
or ``label_info`` (``[{name, idx}]``, as 3D Slicer sends it); labels without names are skipped (logged).
Training starts from the served weights (``load_pretrained``) with the model's own overlays (the network
settings it was trained with) and writes to ``<app>/runs/<model>/<time>-<unique>/``: the step checkpoint (a crash
resumes), the exported model in ``model/`` and, unless the server names a tracking server, an MLflow
SQLite store. Request values are checked as data: ``max_steps`` and ``learning_rate`` numbers,
``modality`` and ``device`` from fixed sets, ``max_steps`` at most the server's ``max_train_steps``.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from monai.bundle import ConfigParser
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.interfaces.tasks.train import TrainTask

from bundles.bundle_configs import bundle_dir, model_overlay_files, run_command
from bundles.engines.tracking import sqlite_uri
from bundles.errors import PromptError
from bundles.io.modality import MODALITIES
from bundles.serving.infer_task import http_errors
from bundles.serving.label_names import legend_of
from bundles.serving.limits import RequestLimits

__all__ = ["BundleTrain", "training_cases", "RUNNING"]

logger = logging.getLogger(__name__)

#: Training processes running now (terminated when the server stops).
RUNNING: set[subprocess.Popen] = set()

DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def training_cases(datastore: Datastore, modality: str) -> list[dict[str, Any]]:
    """The datastore's final labels with names, as training cases."""
    cases = []
    for image_id in datastore.get_labeled_images(DefaultLabelTag.FINAL):
        legend = legend_of(datastore.get_label_info(image_id, DefaultLabelTag.FINAL))
        if not legend:
            logger.warning("%s: its final label has no label names (label_names or label_info); not used for training", image_id)
            continue
        cases.append({"id": image_id, "image": datastore.get_image_uri(image_id), "legend": legend, "modality": modality,
                      "mask": datastore.get_label_uri(image_id, DefaultLabelTag.FINAL)})
    return cases


def _number(request: Mapping[str, Any], key: str, kind: type, default: Any, low: float) -> Any:
    value = request.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)) or value < low:
        raise HTTPException(422, f"{key} must be a {kind.__name__} of at least {low}, got {str(value)[:40]!r}")
    return kind(value)


class BundleTrain(TrainTask):
    """Train ``bundle`` from the weights in ``model_dir`` on the datastore (see the module docstring).

    Args:
        bundle: the bundle folder name.
        model_dir: the served weights (and ``training.json`` with the model's overlays).
        runs_dir: where each training gets its folder.
        tracking_uri: an MLflow server (``http://...``); ``None``: SQLite in the run folder.
        max_steps: steps when the request gives none.
    """

    def __init__(self, bundle: str, model_dir: str | Path | None, runs_dir: str | Path, tracking_uri: str | None = None,
                 max_steps: int = 200, limits: RequestLimits | None = None):
        super().__init__(f"{bundle}: fine-tune on the datastore's final labels (bundle configs/train.json)")
        self.bundle = bundle
        self.model_dir = None if model_dir is None else Path(model_dir).resolve()
        self.runs_dir = Path(runs_dir)
        self.tracking_uri = tracking_uri
        self.max_steps = max_steps
        self.limits = limits or RequestLimits()

    def config(self) -> dict[str, Any]:
        return {"max_steps": self.max_steps, "learning_rate": None, "modality": "ct", "device": "auto"}

    def _configs(self) -> list[str]:
        """``configs/train.json`` of the bundle and the served model's overlays."""
        return [str(bundle_dir(self.bundle) / "configs" / "train.json"), *model_overlay_files(self.bundle, self.model_dir)]

    def _train_data(self, configs: list[str], cases: list[dict[str, Any]], run: Path) -> str:
        """The bundle's ``serving_train_data`` hook (see :mod:`bundles.serving.train_data`) applied to ``cases``."""
        parser = ConfigParser()
        parser.read_config(configs)
        return parser.get_parsed_content("serving_train_data")(cases, run)

    def __call__(self, request: Mapping[str, Any], datastore: Datastore) -> dict[str, Any]:
        max_steps = _number(request, "max_steps", int, self.max_steps, 1)
        learning_rate = _number(request, "learning_rate", float, None, 0.0)
        modality, device = str(request.get("modality", "ct")), str(request.get("device", "auto"))
        if modality not in MODALITIES or not DEVICE.match(device):
            raise HTTPException(422, f"modality must be one of {', '.join(MODALITIES)} and device auto, cpu or cuda:N; got {modality!r}, {device!r}")
        with http_errors(self.bundle):
            self.limits.check_train_steps(max_steps)
            cases = training_cases(datastore, modality)
            if not cases:
                raise PromptError("no datastore image has a final label with label names; save corrected labels first")
            self.runs_dir.joinpath(self.bundle).mkdir(parents=True, exist_ok=True)
            run = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=self.runs_dir / self.bundle))
            configs = self._configs()
            train_data = self._train_data(configs, cases, run)
        root = bundle_dir(self.bundle)
        overrides: dict[str, Any] = {"bundle_root": str(root), "train_data": train_data, "ckpt_dir": str(run),
                                     "max_steps": max_steps, "device": device, "progress": False,
                                     "tracking_uri": self.tracking_uri or sqlite_uri(str(run / "mlruns.db"))}
        if self.model_dir is not None:
            overrides.update(model_dir=str(self.model_dir), load_pretrained=True)
        if learning_rate is not None:
            overrides["learning_rate"] = learning_rate
        command = run_command(configs, overrides)
        logger.info("training %s on %d case(s): %s", self.bundle, len(cases), " ".join(command))
        started = time.perf_counter()
        with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
            RUNNING.add(process)  # terminated if the server stops (bundles.serving.http_app)
            try:
                output, _ = process.communicate()
            finally:
                RUNNING.discard(process)
        (run / "train.log").write_text(output, encoding="utf-8")
        if process.returncode != 0:
            last = output.strip().splitlines()[-1:] or ["no output"]
            raise HTTPException(500, f"{self.bundle}: training failed (exit {process.returncode}, log {run / 'train.log'}): {last[0]}")
        return {"model": self.bundle, "cases": len(cases), "max_steps": max_steps, "seconds": round(time.perf_counter() - started, 1),
                "run_dir": str(run), "model_dir": str(run / "model"), "tracking_uri": overrides["tracking_uri"]}
