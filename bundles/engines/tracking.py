"""Experiment tracking with MLflow (MONAI's ``MLFlowHandler``), one documented default for every training.

Default store: a local SQLite database (``sqlite:///<bundle>/mlruns.db``; MLflow 3.13+ refuses the plain
file store). Every invocation opens its OWN run, named ``<experiment>-<UTC time>`` unless ``run_name`` is
given (MONAI's handler would otherwise continue the newest unfinished run of the experiment, whoever
started it); a resumed training tags its run with the run it resumed from (``resumed_from_run``, the id
:class:`~bundles.engines.run_checkpoint.RunCheckpoint` kept in the checkpoint). Point ``tracking_uri`` at
``http://host:5000`` to log to an ``mlflow server``. Only rank 0 logs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai.handlers import MLFlowHandler

from bundles.engines.bundle_invocation import current_invocation

__all__ = ["sqlite_uri", "default_run_name", "mlflow_handler", "RunTracking"]


def sqlite_uri(path: str | os.PathLike) -> str:
    """``sqlite:///`` URI of a database file (absolute, parent folder created)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def default_run_name(experiment_name: str) -> str:
    """``<experiment>-<UTC yyyymmdd-hhmmss>``: a run of its own for every invocation."""
    return f"{experiment_name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


class RunTracking(MLFlowHandler):
    """MONAI's ``MLFlowHandler`` that also puts its run id in ``engine.state.tracking_run_id`` (kept in the
    checkpoint) and tags a resumed run with ``resumed_from_run`` (``engine.state.resumed_tracking_run``)."""

    def start(self, engine) -> None:
        super().start(engine)
        engine.state.tracking_run_id = self.cur_run.info.run_id
        invocation = current_invocation()
        if invocation is not None:
            self.client.log_dict(self.cur_run.info.run_id, invocation.card(), "config/merged_config.json")
        previous = getattr(engine.state, "resumed_tracking_run", None)
        if previous:
            self.client.set_tag(self.cur_run.info.run_id, "resumed_from_run", previous)


def _step_loss(output: list[Mapping[str, Any]]) -> float:
    """The loss of a :class:`~bundles.engines.trainer.LossTrainer` step (``engine.state.output``)."""
    return float(output[0]["loss"])


def mlflow_handler(tracking_uri: str, experiment_name: str, run_name: str | None = None,
                   params: Mapping[str, Any] | None = None, log_every: int = 1, artifacts: str | None = None):
    """MONAI's ``MLFlowHandler`` for a :class:`~bundles.engines.trainer.LossTrainer`: ``params`` at start,
    with the merged config of the bundle run as artifact ``config/merged_config.json``; the step's loss as
    metric ``loss`` every ``log_every`` steps (and MONAI's ``lr``); at the end every file under
    ``artifacts`` (the exported model folder: weights and ``training.json``; list this handler after the
    export handler so they exist), and the run is closed."""
    every = max(int(log_every), 1)
    return RunTracking(
        tracking_uri=tracking_uri, experiment_name=experiment_name, run_name=run_name or default_run_name(experiment_name),
        experiment_param={k: str(v)[:500] for k, v in (params or {}).items()}, iteration_log=lambda _, step: step % every == 0,
        epoch_log=False, tag_name="loss", output_transform=_step_loss, close_on_complete=True, artifacts=artifacts,
    )
