"""Writing the trained weights when a run completes, with the model card beside them (an ignite handler).

Each export is a plain state dict written atomically; each export folder gets ``training.json`` (step, run
identity, checkpoint, sha256 of every file, and the model card: config files and merged config). Exports
never go into the folder of weights the run loaded (``protected``): that is refused when the handler is
built, before any step, so fine-tuning can never overwrite the weights it started from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from bundles.checkpoints.model_card import CARD_NAME
from bundles.checkpoints.release import file_sha256
from bundles.engines.run_checkpoint import CHECKPOINT_NAME
from bundles.errors import ConfigurationError
from bundles.io.atomic import atomic_torch_save, atomic_write_json

__all__ = ["ModelExport"]

logger = logging.getLogger(__name__)


class ModelExport:
    """At ``Events.COMPLETED``: write ``{path: module}`` state dicts and ``training.json`` per folder.

    Args:
        exports: ``{path: module}``, e.g. ``{"runs/train/model/model.pt": network}``.
        checkpoint_dir: the run's checkpoint folder (named in the card).
        identity: the run identity, recorded in the card.
        protected: weights files the run loaded; no export may go into their folders.
        model_card: extra facts for ``training.json`` (config files, merged config).

    Raises:
        ConfigurationError: an export would land beside the loaded weights.
    """

    def __init__(
        self,
        exports: Mapping[str | PathLike, torch.nn.Module],
        checkpoint_dir: str | PathLike,
        *,
        identity: Mapping[str, str] | None = None,
        protected: Sequence[str | PathLike] = (),
        model_card: Mapping[str, Any] | None = None,
    ):
        self.exports = {Path(p): m for p, m in exports.items()}
        self.checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME
        self.identity = dict(identity) if identity is not None else None
        self.model_card = dict(model_card or {})
        loaded = {Path(p).resolve().parent: Path(p) for p in protected}
        for path in self.exports:
            folder = path.resolve().parent
            if folder in loaded:
                raise ConfigurationError(
                    f"{path}: the trained weights would be written into {folder}, the folder this run loads its "
                    f"pretrained weights from ({loaded[folder].name}); export to the run's own folder instead "
                    "(--export_dir, default <ckpt_dir>/model)"
                )

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        for path, module in self.exports.items():
            atomic_torch_save(module.state_dict(), path)
        for folder in sorted({p.parent for p in self.exports}):
            files = {p.name: file_sha256(p) for p in self.exports if p.parent == folder}
            card = {"step": int(engine.state.iteration), "identity": self.identity, "checkpoint": str(self.checkpoint.resolve()),
                    "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files_sha256": files, **self.model_card}
            atomic_write_json(folder / CARD_NAME, card)
            logger.info("exported the trained weights (%s) to %s", ", ".join(files), folder.resolve())
