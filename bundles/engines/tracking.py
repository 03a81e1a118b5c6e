"""Experiment tracking with MLflow, one documented default for every training config.

Default store: a local SQLite database (``sqlite:///<bundle>/mlruns.db``; MLflow 3.13+ refuses the plain
file store). Every invocation opens its OWN run with an explicit name (``<experiment>-<UTC time>`` unless
given), so two trainings against one store never write into the same run; a resumed training records the
run it resumed from as a tag. Point ``tracking_uri`` at ``http://host:5000`` to log to an ``mlflow server``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["MLflowTracker", "sqlite_uri"]

logger = logging.getLogger(__name__)


def sqlite_uri(path: str | os.PathLike) -> str:
    """``sqlite:///`` URI of a database file (absolute, parent folder created)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


class MLflowTracker:
    """Log parameters and per-step metrics of one training run to MLflow.

    Args:
        tracking_uri: ``sqlite:///abs/path.db`` or a server URL.
        experiment_name: normally the bundle name.
        run_name: explicit run name; default ``<experiment>-<UTC timestamp>``.
        params: flat parameters recorded at start.
    """

    def __init__(self, tracking_uri: str, experiment_name: str, run_name: str | None = None, params: Mapping[str, Any] | None = None):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        self.run_name = run_name or f"{experiment_name}-{stamp}"
        self.params = dict(params or {})
        self.run_id: str | None = None

    def start(self, resumed_from: str | None = None) -> str:
        """Open the run (a new one for every invocation) and return its id."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(self.experiment_name)
        run = mlflow.start_run(run_name=self.run_name)
        self.run_id = run.info.run_id
        if self.params:
            mlflow.log_params({k: str(v)[:500] for k, v in self.params.items()})
        if resumed_from:
            mlflow.set_tag("resumed_from_run", resumed_from)
        logger.info("MLflow run %s (%s) in %s", self.run_name, self.run_id, self.tracking_uri)
        return self.run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def end(self, status: str = "FINISHED") -> None:
        import mlflow

        if self.run_id is not None:
            mlflow.end_run(status=status)
            self.run_id = None
