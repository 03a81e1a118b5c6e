"""Crash-safe checkpoints of a training run, and resuming it at the same step (an ignite handler).

Every ``every`` steps and at the end, ``<checkpoint_dir>/last.pt`` is replaced atomically
(:func:`bundles.io.atomic.atomic_torch_save`) with ``step``, the model, optimiser, scheduler, GradScaler, the
batch iterator's random state, the run's identity (:mod:`bundles.engines.run_identity`) and its MLflow
run id. Under torchrun each rank draws its own samples, so the per-rank objects (the batch iterator) are
gathered from every rank into the checkpoint (rank 0 writes it) and each rank resumes its own stream; a
checkpoint of another number of processes is refused unless ``resume="force"``. When the run
starts, a ``last.pt`` of the same identity is loaded and training continues at its step; one of another
identity (other data, settings, pretrained weights or code) is refused before any step unless
``resume="force"``; a checkpoint that already reached ``max_steps`` is refused (0 steps would be trained)
unless ``reuse_finished``, which skips straight to the end (exports run again).

MONAI's ``CheckpointSaver`` is not used because it writes with ignite's ``DiskSaver(atomic=False)``: a crash
during the write leaves a truncated file where the last good checkpoint was. Loading follows MONAI's
``CheckpointLoader`` (weights-only ``torch.load``, strict), plus the identity check first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from bundles.engines.ranks import gathered, rank_and_world
from bundles.engines.run_identity import identity_differences
from bundles.engines.trainer import total_steps
from bundles.errors import ConfigurationError
from bundles.io.atomic import atomic_torch_save

__all__ = ["RunCheckpoint", "CHECKPOINT_NAME"]

logger = logging.getLogger(__name__)

#: The checkpoint file inside ``checkpoint_dir``.
CHECKPOINT_NAME = "last.pt"


class RunCheckpoint:
    """Save ``last.pt`` every ``every`` steps and at completion; resume from it when the run starts.

    Args:
        checkpoint_dir: folder of ``last.pt``.
        objects: name -> object with ``state_dict``/``load_state_dict`` (``model``, ``optimizer``,
            ``scheduler``, ``batches``, ...); the engine's ``grad_scaler`` is added as ``scaler``. Objects without
            ``state_dict`` (e.g. a plain iterator) are skipped.
        every: steps between checkpoints.
        identity: this run's identity, stored and compared on resume; None skips the comparison.
        resume: "auto" (resume a checkpoint of the same identity, refuse another) or "force".
        reuse_finished: a checkpoint at ``max_steps`` exports again instead of being refused.
        save: False on ranks > 0 (they take part in gathering their per-rank state and resume, never write).
        per_rank: names in ``objects`` whose state differs between ranks (each rank's sample stream).

    Raises:
        ConfigurationError: ``resume`` unknown; at start, a checkpoint of another run or a finished run.
    """

    def __init__(
        self,
        checkpoint_dir: str | PathLike,
        objects: Mapping[str, Any],
        every: int = 100,
        *,
        identity: Mapping[str, str] | None = None,
        resume: str = "auto",
        reuse_finished: bool = False,
        save: bool = True,
        per_rank: tuple[str, ...] = ("batches",),
    ):
        if resume not in ("auto", "force"):
            raise ConfigurationError(f"resume must be 'auto' or 'force', got {resume!r}")
        self.path = Path(checkpoint_dir) / CHECKPOINT_NAME
        self.objects = {k: v for k, v in objects.items() if hasattr(v, "state_dict") and hasattr(v, "load_state_dict")}
        self.every = max(int(every), 1)
        self.identity = dict(identity) if identity is not None else None
        self.resume_mode = resume
        self.reuse_finished = reuse_finished
        self.save = save
        self.per_rank = tuple(per_rank)

    def attach(self, engine: Engine) -> None:
        if getattr(engine, "grad_scaler", None) is not None:
            self.objects.setdefault("scaler", engine.grad_scaler)
        engine.add_event_handler(Events.STARTED, self.resume)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.every), self.checkpoint)  # every rank: gathering
        engine.add_event_handler(Events.COMPLETED, self.checkpoint)

    def checkpoint(self, engine: Engine) -> None:
        """Replace ``last.pt`` atomically with the run's state at this step (``per_rank`` objects: a list of
        every rank's state, gathered here on every rank; only a rank with ``save`` writes)."""
        ranked = {name: gathered(self.objects[name].state_dict()) for name in self.per_rank if name in self.objects}
        if not self.save:
            return
        state: dict[str, Any] = {"step": int(engine.state.iteration), "identity": self.identity,
                                 "run_id": getattr(engine.state, "tracking_run_id", None), "per_rank": ranked}
        state.update({name: obj.state_dict() for name, obj in self.objects.items() if name not in ranked})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(state, self.path)

    def resume(self, engine: Engine) -> None:
        """Load ``last.pt`` if present and continue at its step (see the module docstring for refusals)."""
        if not self.path.is_file():
            return
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if self.identity is not None:
            differences = identity_differences(state.get("identity"), self.identity)
            if differences and self.resume_mode != "force":
                raise ConfigurationError(
                    f"{self.path}: this checkpoint belongs to another training run (its "
                    f"{', '.join(differences)} differ from this one's); to start this run, choose a new --ckpt_dir "
                    f"(or delete {self.path.parent}); to continue that run anyway, pass --resume force"
                )
            if differences:
                logger.warning("resuming %s although its %s differ (--resume force)", self.path, ", ".join(differences))
        step, max_steps = int(state["step"]), total_steps(engine)
        if step >= max_steps and not self.reuse_finished:
            raise ConfigurationError(
                f"{self.path}: this run already finished at step {step} (max_steps {max_steps}), so 0 steps would be "
                "trained; raise --max_steps to train on, choose a new --ckpt_dir for a new run, or pass "
                "--reuse_finished True to export its weights again"
            )
        rank, world = rank_and_world()
        ranked = state.get("per_rank", {})
        saved_world = len(next(iter(ranked.values()), [None]))
        if ranked and saved_world != world:
            if self.resume_mode != "force":
                raise ConfigurationError(
                    f"{self.path}: this checkpoint was written by {saved_world} training process(es), this run has {world};"
                    f" resume with --nproc_per_node={saved_world}, or pass --resume force (ranks without a saved sample"
                    " stream then start a fresh one)"
                )
            logger.warning("resuming %s of %d process(es) with %d (--resume force)", self.path, saved_world, world)
        for name, obj in self.objects.items():
            if name in ranked:
                if rank < len(ranked[name]):
                    obj.load_state_dict(ranked[name][rank])
            elif name in state:
                if isinstance(obj, torch.nn.Module):
                    obj.load_state_dict(state[name], strict=True)
                else:
                    obj.load_state_dict(state[name])
        engine.state.resumed_tracking_run = state.get("run_id")  # tagged by bundles.engines.tracking.RunTracking
        engine.state.iteration = min(step, max_steps)
        engine.state.epoch = 1 if step >= max_steps else 0
        if step >= max_steps:
            logger.info("%s already finished at step %d; exporting its weights", self.path, step)
        else:
            logger.info("resumed from %s at step %d", self.path, step)

