"""A small step-based training loop with crash-safe checkpoints, resume, AMP, MLflow and DDP.

``model(batch)`` returns the loss. Every ``checkpoint_every`` steps (and at the end) ``last.pt`` in
``checkpoint_dir`` is replaced atomically with the model, optimiser, scheduler, step count, the batch
iterator's random state and the run's identity (:mod:`bundles.engines.run_identity`). A new invocation with
the same identity finds it and continues at the same step; one with another identity (other data, settings,
pretrained weights or code) is refused, unless ``resume="force"``. A run that would train 0 steps (already
finished) is refused unless ``reuse_finished``. Exports never go into the folder of the weights the run
loaded (``protected``), and each export folder gets ``training.json`` (identity, config, steps, checksums).
Under ``torchrun`` the model is wrapped in DistributedDataParallel (``find_unused_parameters=True``: padded
or unused query branches get no gradient) and only rank 0 logs, checkpoints and exports.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from bundles.checkpoints.model_card import CARD_NAME
from bundles.checkpoints.release import file_sha256
from bundles.engines.run_identity import identity_differences
from bundles.engines.tracking import MLflowTracker
from bundles.errors import ConfigurationError
from bundles.precision import autocast, resolve_device
from bundles.io.atomic import atomic_torch_save, atomic_write_json
from bundles.progress import show_progress

__all__ = ["Trainer", "warmup_cosine"]

logger = logging.getLogger(__name__)


def warmup_cosine(warmup_steps: int, total_steps: int, min_factor: float = 0.0):
    """LR factor for ``torch.optim.lr_scheduler.LambdaLR``: linear warm-up, then cosine decay to
    ``min_factor`` at ``total_steps`` (SAT: 20k warm-up of 200k steps)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = min(1.0, (step - warmup_steps) / max(total_steps - warmup_steps, 1))
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class Trainer:
    """Train ``model`` for ``max_steps`` optimiser steps.

    Args:
        model: module whose ``forward(batch)`` returns a scalar loss.
        batches: endless iterator of batches (its ``state_dict``/``load_state_dict``, if any, are checkpointed).
        optimizer: optimiser over the trainable parameters.
        max_steps: total number of steps (a resumed run stops at the same total).
        checkpoint_dir: folder for ``last.pt``.
        scheduler: optional LR scheduler stepped once per step.
        device: "auto" (CUDA when available), "cpu", "cuda:0", ...
        amp: autocast (bf16 on CPU, fp16 + GradScaler on CUDA).
        grad_clip: clip the gradient norm to this value (None: no clipping).
        checkpoint_every: steps between checkpoints.
        log_every: steps between log lines and MLflow metric points.
        tracker: MLflow tracker (rank 0 only), or None.
        exports: ``{path: module}`` plain state dicts written at the end (e.g. ``runs/train/model/model.pt``).
        progress: show a progress bar.
        identity: this run's identity (:func:`bundles.engines.run_identity.run_identity`), stored in the
            checkpoint and compared on resume; None skips the comparison.
        resume: "auto" (resume a checkpoint of the same identity, refuse another) or "force" (resume it anyway).
        reuse_finished: when the checkpoint has already reached ``max_steps``, export it again instead of
            refusing a run that would train 0 steps.
        protected: weights files this run loaded; no export may go into their folders.
        model_card: extra facts for ``training.json`` beside the exports (config files, merged config).

    Raises:
        ConfigurationError: an export would land beside the loaded weights, ``resume`` is unknown, the
            checkpoint belongs to another run, or the run is finished (see above); all before any step.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        batches: Iterator[Mapping[str, Any]],
        optimizer: torch.optim.Optimizer,
        max_steps: int,
        checkpoint_dir: str | PathLike,
        *,
        scheduler: Any = None,
        device: str | torch.device | None = "auto",
        amp: bool = False,
        grad_clip: float | None = 1.0,
        checkpoint_every: int = 100,
        log_every: int = 10,
        tracker: MLflowTracker | None = None,
        exports: Mapping[str, torch.nn.Module] | None = None,
        progress: bool = True,
        identity: Mapping[str, str] | None = None,
        resume: str = "auto",
        reuse_finished: bool = False,
        protected: Sequence[str | PathLike] = (),
        model_card: Mapping[str, Any] | None = None,
    ):
        if resume not in ("auto", "force"):
            raise ConfigurationError(f"resume must be 'auto' or 'force', got {resume!r}")
        self.device = resolve_device(device)
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.model = model.to(self.device)
        self.train_model: torch.nn.Module = self.model
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
        self.batches = batches
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.max_steps = int(max_steps)
        self.checkpoint_path = Path(checkpoint_dir) / "last.pt"
        self.amp = amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp and self.device.type == "cuda")
        self.grad_clip = grad_clip
        self.checkpoint_every = checkpoint_every
        self.log_every = log_every
        self.tracker = tracker if self.rank == 0 else None
        self.exports = dict(exports or {})
        self.progress = progress and self.rank == 0
        self.identity = dict(identity) if identity is not None else None
        self.resume_mode = resume
        self.reuse_finished = reuse_finished
        self.model_card = dict(model_card or {})
        self._check_exports(protected)
        self.step = 0
        self._previous_run: str | None = None

    def _check_exports(self, protected: Sequence[str | PathLike]) -> None:
        loaded = {Path(p).resolve().parent: Path(p) for p in protected}
        for path in self.exports:
            folder = Path(path).resolve().parent
            if folder in loaded:
                raise ConfigurationError(
                    f"{path}: the trained weights would be written into {folder}, the folder this run loads its "
                    f"pretrained weights from ({loaded[folder].name}); export to the run's own folder instead "
                    "(--export_dir, default <ckpt_dir>/model)"
                )

    def _state(self) -> dict[str, Any]:
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "run_id": self.tracker.run_id if self.tracker else None,
            "identity": self.identity,
        }
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if hasattr(self.batches, "state_dict"):
            state["batches"] = self.batches.state_dict()
        return state

    def resume(self) -> bool:
        """Load ``last.pt`` if present; return whether training resumes."""
        if not self.checkpoint_path.is_file():
            return False
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        if self.identity is not None:
            differences = identity_differences(state.get("identity"), self.identity)
            if differences and self.resume_mode != "force":
                raise ConfigurationError(
                    f"{self.checkpoint_path}: this checkpoint belongs to another training run (its "
                    f"{', '.join(differences)} differ from this one's); to start this run, choose a new --ckpt_dir "
                    f"(or delete {self.checkpoint_path.parent}); to continue that run anyway, pass --resume force"
                )
            if differences:
                logger.warning("resuming %s although its %s differ (--resume force)", self.checkpoint_path, ", ".join(differences))
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        if hasattr(self.batches, "load_state_dict") and "batches" in state:
            self.batches.load_state_dict(state["batches"])
        self.step = int(state["step"])
        self._previous_run = state.get("run_id")
        logger.info("resumed from %s at step %d", self.checkpoint_path, self.step)
        return True

    def checkpoint(self) -> None:
        if self.rank == 0:
            self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_torch_save(self._state(), self.checkpoint_path)

    def run(self) -> dict[str, float]:
        """Train until ``max_steps``; export; return the last logged metrics."""
        self.resume()
        if self.step >= self.max_steps:
            if not self.reuse_finished:
                raise ConfigurationError(
                    f"{self.checkpoint_path}: this run already finished at step {self.step} (max_steps {self.max_steps}), "
                    "so 0 steps would be trained; raise --max_steps to train on, choose a new --ckpt_dir for a new "
                    "run, or pass --reuse_finished True to export its weights again"
                )
            logger.info("%s already finished at step %d; exporting its weights", self.checkpoint_path, self.step)
            self._export()
            return {}
        if self.tracker is not None:
            self.tracker.start(resumed_from=self._previous_run)
        self.model.train()
        metrics: dict[str, float] = {}
        running, count, start = 0.0, 0, time.perf_counter()
        bar = tqdm(total=self.max_steps, initial=self.step, desc="train", unit="step", disable=not show_progress(self.progress))
        status = "FAILED"
        try:
            while self.step < self.max_steps:
                batch = next(self.batches)
                self.optimizer.zero_grad(set_to_none=True)
                with autocast(self.device, self.amp):
                    loss = self.train_model(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {self.step}; lower the learning rate")
                self.scaler.scale(loss).backward()
                if self.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.scheduler is not None:
                    self.scheduler.step()
                self.step += 1
                running += loss.item()
                count += 1
                bar.update(1)
                if self.step % self.log_every == 0 or self.step == self.max_steps:
                    lr = self.optimizer.param_groups[0]["lr"]
                    metrics = {"loss": running / count, "lr": lr, "seconds_per_step": (time.perf_counter() - start) / count}
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}")
                    if self.tracker is not None:
                        self.tracker.log_metrics(metrics, self.step)
                    if self.rank == 0:
                        logger.info("step %d/%d loss %.4f lr %.2e", self.step, self.max_steps, metrics["loss"], lr)
                    running, count, start = 0.0, 0, time.perf_counter()
                if self.step % self.checkpoint_every == 0 or self.step == self.max_steps:
                    self.checkpoint()
            status = "FINISHED"
        finally:
            bar.close()
            if self.tracker is not None:
                self.tracker.end(status)
        self._export()
        return metrics

    def _export(self) -> None:
        """Rank 0: write every export atomically, then ``training.json`` in each export folder."""
        if self.rank != 0 or not self.exports:
            return
        for path, module in self.exports.items():
            atomic_torch_save(module.state_dict(), Path(path))
        for folder in sorted({Path(p).parent for p in self.exports}):
            files = {Path(p).name: file_sha256(p) for p in self.exports if Path(p).parent == folder}
            card = {"step": self.step, "identity": self.identity, "checkpoint": str(self.checkpoint_path.resolve()),
                    "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files_sha256": files, **self.model_card}
            atomic_write_json(folder / CARD_NAME, card)
            logger.info("exported the trained weights (%s) to %s", ", ".join(files), folder.resolve())
