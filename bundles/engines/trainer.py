"""Training on MONAI's engines: ``SupervisedTrainer`` for modules that compute their own loss, step-based.

Every family's training module takes a whole batch and returns the loss (SAT: queries from the text encoder,
deep-supervised Dice + BCE with query masks; SAM families: click simulation inside the step), so
:class:`LossTrainer` replaces ``SupervisedTrainer``'s forward/loss with ``loss = network(batch)`` and keeps
everything else of MONAI's ignite engine: events, handlers, ``train#trainer`` / ``train#handlers`` ids (so
``--tracking mlflow`` and MONAI Label's bundle train task drive it). Training is counted in optimiser
steps: one epoch of ``max_steps`` iterations over an endless batch iterator (``epoch_length`` x
``max_epochs`` = ``max_steps`` x 1). The handlers that make a run safe are in this package:
:class:`~bundles.engines.run_checkpoint.RunCheckpoint` (atomic ``last.pt``, resume at the same step, run
identity) and :class:`~bundles.engines.model_export.ModelExport` (weights + ``training.json``, never into
the folder of loaded weights). Under ``torchrun`` the network is wrapped in DistributedDataParallel
(``find_unused_parameters=True``: padded or unused query branches get no gradient); only rank 0 logs,
checkpoints and exports (the configs disable those handlers on other ranks).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine
from monai.engines import SupervisedTrainer
from torch import nn

from bundles.engines.ranks import in_process_group
from bundles.precision import autocast, resolve_device

__all__ = ["LossTrainer", "warmup_cosine", "warmup_poly", "total_steps"]


def warmup_cosine(warmup_steps: int, total_steps: int, min_factor: float = 0.0):
    """LR factor for ``torch.optim.lr_scheduler.LambdaLR``: linear warm-up, then cosine decay to
    ``min_factor`` at ``total_steps`` (SAT: 20k warm-up of 200k steps)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = min(1.0, (step - warmup_steps) / max(total_steps - warmup_steps, 1))
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def warmup_poly(warmup_steps: int, decay_steps: int, power: float = 0.9):
    """LR factor for ``LambdaLR``: linear warm-up ``(step + 1) / warmup_steps``, then polynomial decay
    ``(1 - (step - warmup_steps) / decay_steps) ** power`` (SAMed ``trainer.py``: 250 warm-up steps, power 0.9,
    ``decay_steps`` = 200 epochs of steps while training stops after 160, so the rate never reaches 0)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        return max(0.0, 1.0 - (step - warmup_steps) / max(decay_steps, 1)) ** power

    return factor


def total_steps(engine: Engine) -> int:
    """The optimiser steps a step-based run trains in all (``epoch_length`` x ``max_epochs``)."""
    return int(engine.state.epoch_length) * int(engine.state.max_epochs)


def _no_loss(*_: Any) -> None:  # SupervisedTrainer needs a loss function; the module computes its own
    return None


class LossTrainer(SupervisedTrainer):
    """MONAI ``SupervisedTrainer`` whose network computes the loss: ``loss = network(batch)``.

    Args:
        network: module whose ``forward(batch)`` returns a scalar loss (wrapped in DDP under ``torchrun``).
        batches: endless iterator of batches.
        optimizer: optimiser over the trainable parameters.
        max_steps: total optimiser steps (``epoch_length``; a resumed run stops at the same total).
        device: "auto" (CUDA when available), "cpu", "cuda:0", ...
        amp: autocast (bf16 on CPU, fp16 + GradScaler on CUDA).
        grad_clip: clip the gradient norm to this value (None or 0: no clipping).
        train_handlers: MONAI/ignite handlers (checkpoint, export, logging, LR schedule, MLflow, ...).

    ``engine.state.output`` is ``[{"loss": tensor}]`` after each step (the shape of MONAI's decollated output,
    so MONAI's own handlers and ``--tracking mlflow``'s ``from_engine(["loss"], first=True)`` read it); ``engine.module`` is the unwrapped
    network and ``engine.grad_scaler`` the GradScaler (both part of the checkpoint).

    Raises:
        FloatingPointError: the loss became NaN or infinite (names the step and what to change).
    """

    def __init__(
        self,
        network: nn.Module,
        batches: Iterator[Mapping[str, Any]],
        optimizer: torch.optim.Optimizer,
        max_steps: int,
        *,
        device: str | torch.device | None = "auto",
        amp: bool = False,
        grad_clip: float | None = 1.0,
        train_handlers: Sequence[Any] | None = None,
    ):
        device = resolve_device(device)
        self.module = network.to(device)
        train_network: nn.Module = self.module
        if in_process_group():
            ids = [device.index] if device.type == "cuda" else None
            train_network = nn.parallel.DistributedDataParallel(self.module, device_ids=ids, find_unused_parameters=True)
        self.use_amp = amp
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
        self.grad_clip = grad_clip
        super().__init__(
            device=device, max_epochs=1, epoch_length=int(max_steps), train_data_loader=batches, network=train_network,
            optimizer=optimizer, loss_function=_no_loss, train_handlers=list(train_handlers or []), amp=False,
            decollate=False, optim_set_to_none=True,
        )

    def _iteration(self, engine: LossTrainer, batchdata: Mapping[str, Any]) -> list[dict[str, torch.Tensor]]:
        """One optimiser step on ``batchdata``: forward (loss), backward, clip, step."""
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        with autocast(engine.state.device, engine.use_amp):
            loss = engine.network(batchdata)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {engine.state.iteration}; lower the learning rate")
        engine.grad_scaler.scale(loss).backward()
        if engine.grad_clip:
            engine.grad_scaler.unscale_(engine.optimizer)
            torch.nn.utils.clip_grad_norm_(engine.module.parameters(), engine.grad_clip)
        engine.grad_scaler.step(engine.optimizer)
        engine.grad_scaler.update()
        return [{"loss": loss.detach()}]
