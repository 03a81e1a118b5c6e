"""Knowledge pretraining of a SAT text encoder: the text-text stage of SAT-Pretrain.

A term is pulled towards its definition, synonyms and related terms and pushed from the other texts of
the batch with a multi-positive InfoNCE (official SAT-Pretrain: AdamW, no weight decay on norms, biases and
the temperature; only the top transformer layers open; learnable temperature). The loop itself is the
shared :class:`~bundles.engines.trainer.LossTrainer` and its handlers (atomic ``last.pt`` with resume, MLflow, exports).

Use it from Python or a MONAI bundle config (``KnowledgePretraining(...).run()``), or from the command line
(``python -m tools.pretrain_text_encoder``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.handlers import LrScheduleHandler
from torch import nn

from bundles.checkpoints.loading import load_state_dict_strict, read_state_dict
from bundles.engines.model_export import ModelExport
from bundles.engines.run_checkpoint import RunCheckpoint
from bundles.engines.tracking import mlflow_handler
from bundles.engines.trainer import LossTrainer, warmup_cosine
from bundles.engines.training_log import TrainingLog
from bundles.errors import ConfigurationError
from bundles.networks.sat.text_encoder import TextQueryEncoder, build_text_encoder, canonical_kind
from bundles.sat.knowledge import KnowledgePair, read_knowledge_pairs
from bundles.sat.losses.contrastive import MultiPositiveInfoNCE, match_matrix

__all__ = ["FEATURES", "KnowledgePairBatches", "KnowledgeContrastiveModule", "KnowledgePretraining", "open_top_layers"]

logger = logging.getLogger(__name__)

#: Which features the loss sees: the tower's pooled output ("raw", SAT-Pretrain stage 1), the projected
#: query features ("projected"), or both losses summed ("both", the text step of SAT-Pretrain stage 2).
FEATURES = ("raw", "projected", "both")


class KnowledgePairBatches:
    """Endless batches of ``batch_size`` distinct pairs drawn at random (seeded; state is checkpointed).

    Each batch is ``{"anchors": [str], "positives": [str], "keys": [str]}``.
    """

    def __init__(self, pairs: Sequence[KnowledgePair], batch_size: int, seed: int = 0):
        if batch_size < 2:
            raise ConfigurationError(f"batch_size must be at least 2 for a contrastive loss, got {batch_size}")
        self.pairs = list(pairs)
        self.batch_size = min(batch_size, len(self.pairs))
        self.rng = np.random.default_rng(seed)

    def __iter__(self) -> Iterator[dict[str, list[str]]]:
        return self

    def __next__(self) -> dict[str, list[str]]:
        chosen = [self.pairs[i] for i in self.rng.choice(len(self.pairs), size=self.batch_size, replace=False)]
        return {"anchors": [p.anchor for p in chosen], "positives": [p.positive for p in chosen], "keys": [p.key for p in chosen]}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class KnowledgeContrastiveModule(nn.Module):
    """``forward(batch) -> loss``: the encoder's features of anchors vs positives under the InfoNCE.

    Args:
        encoder: any :class:`TextQueryEncoder`.
        feature: one of :data:`FEATURES`.
        loss: default :class:`MultiPositiveInfoNCE` (holds the learnable temperature).
    """

    def __init__(self, encoder: TextQueryEncoder, feature: str = "raw", loss: MultiPositiveInfoNCE | None = None):
        super().__init__()
        if feature not in FEATURES:
            raise ConfigurationError(f"unknown feature {feature!r}; expected one of {FEATURES}")
        self.encoder = encoder
        self.feature = feature
        self.loss = loss if loss is not None else MultiPositiveInfoNCE()

    def forward(self, batch: dict[str, list[str]]) -> torch.Tensor:
        n = len(batch["anchors"])
        raw = self.encoder.pooled([*batch["anchors"], *batch["positives"]])
        positives = match_matrix(batch["keys"]).to(raw.device)
        total = raw.new_zeros(())
        if self.feature in ("raw", "both"):
            total = total + self.loss(raw[:n], raw[n:], positives)
        if self.feature in ("projected", "both"):
            projected = self.encoder.project(raw)
            total = total + self.loss(projected[:n], projected[n:], positives)
        return total


def open_top_layers(encoder: TextQueryEncoder, open_layers: int, train_projection: bool) -> list[str]:
    """Freeze ``encoder`` except its top ``open_layers`` transformer layers and, optionally, its projection.

    SAT-Pretrain's ``open_bert_layer=8`` on the 12-layer MPNet leaves layers 9-11 trainable, i.e.
    ``open_layers=3`` here (official SAT-Pretrain). Embeddings, pooler and ``modality_embed`` stay frozen
    (the text-text loss does not use them).

    Returns:
        Names of the trainable parameters.

    Raises:
        ConfigurationError: ``open_layers`` outside ``[0, number of layers]``, or nothing left to train.
    """
    layers = encoder.tower.encoder.layer
    if not 0 <= open_layers <= len(layers):
        raise ConfigurationError(f"open_layers must be between 0 and {len(layers)} (tower layers), got {open_layers}")
    encoder.requires_grad_(False)
    for layer in layers[len(layers) - open_layers :]:
        layer.requires_grad_(True)
    projection = getattr(encoder, "projection_layer", None)
    if train_projection and projection is not None:
        projection.requires_grad_(True)
    trainable = [name for name, p in encoder.named_parameters() if p.requires_grad]
    if not trainable:
        raise ConfigurationError(
            "nothing to train: open_layers=0 and the loss does not use a projection layer; open tower layers "
            "or use feature='projected'"
        )
    return trainable


def _optimizer(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with no weight decay on norms, biases and the temperature (all parameters with < 2 dims)."""
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )


class KnowledgePretraining:
    """Pretrain a text encoder on a knowledge JSON-lines file and write its state dict.

    Args:
        knowledge_file: JSON lines, see :func:`~bundles.sat.knowledge.read_knowledge_pairs`.
        output_file: where the trained encoder's state dict (our key names) is written, atomically.
        encoder_kind: ``"knowledge"``, ``"medcpt"``, ``"basebert"`` or ``"sentence"`` (ignored with ``encoder``).
        model_dir: local folder of the tower (config, tokenizer; its weights are the starting point unless
            ``init_checkpoint`` is given). Optional for ``"sentence"``.
        init_checkpoint: start from this converted text-encoder checkpoint (loaded strictly).
        encoder: an already built encoder (e.g. from a bundle config); overrides the three options above.
        feature: loss features, one of :data:`FEATURES` (SAT-Pretrain stage 1: ``"raw"``).
        open_layers: trainable top transformer layers (3 = SAT-Pretrain's ``open_bert_layer 8``).
        steps, batch_size, lr, weight_decay, warmup_steps: optimisation (SAT-Pretrain: 100k, 128, 1e-5, 0, 10k).
        seed: seeds the weight init of new layers and the pair sampling.
        device: "cpu" (default) or a CUDA device such as "cuda:0".
        checkpoint_dir: folder of the resumable ``last.pt`` (default: ``<output folder>/pretrain_checkpoints``).
        tracking_uri: MLflow store (e.g. ``sqlite:////abs/mlruns.db``); None disables tracking.
    """

    def __init__(
        self,
        knowledge_file: str | PathLike,
        output_file: str | PathLike,
        *,
        encoder_kind: str = "sentence",
        model_dir: str | PathLike | None = None,
        init_checkpoint: str | PathLike | None = None,
        encoder: TextQueryEncoder | None = None,
        feature: str = "raw",
        open_layers: int = 3,
        steps: int = 1000,
        batch_size: int = 128,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        seed: int = 0,
        device: str = "cpu",
        checkpoint_dir: str | PathLike | None = None,
        checkpoint_every: int = 100,
        log_every: int = 10,
        tracking_uri: str | None = None,
        experiment_name: str = "sat_text_pretraining",
        progress: bool = True,
    ):
        self.pairs = read_knowledge_pairs(knowledge_file)
        self.output_file = Path(output_file)
        self.init_checkpoint = None if init_checkpoint is None else Path(init_checkpoint)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else self.output_file.parent / "pretrain_checkpoints"
        torch.manual_seed(seed)
        if encoder is None:
            kind = canonical_kind(encoder_kind)
            encoder = build_text_encoder(kind, model_dir, pretrained_tower=init_checkpoint is None, freeze_tower=True)
        if init_checkpoint is not None:
            load_state_dict_strict(encoder, read_state_dict(init_checkpoint), source=str(init_checkpoint))
        self.module = KnowledgeContrastiveModule(encoder, feature)
        trainable = open_top_layers(encoder, open_layers, train_projection=feature != "raw")
        logger.info("knowledge pretraining: %d pairs, %d trainable tensors", len(self.pairs), len(trainable))
        self.batches = KnowledgePairBatches(self.pairs, batch_size, seed)
        self.eval_batch = next(KnowledgePairBatches(self.pairs, batch_size, seed + 1))
        self.optimizer = _optimizer(self.module, lr, weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(warmup_steps, steps))
        self.params = {
            "knowledge_file": str(knowledge_file), "encoder": type(encoder).__name__, "feature": feature,
            "open_layers": open_layers, "steps": steps, "batch_size": self.batches.batch_size, "lr": lr,
            "weight_decay": weight_decay, "warmup_steps": warmup_steps, "seed": seed, "n_pairs": len(self.pairs),
        }
        self.steps, self.device, self.checkpoint_every, self.log_every = steps, device, checkpoint_every, log_every
        self.tracking_uri, self.experiment_name = tracking_uri, experiment_name
        self.progress = progress

    @property
    def encoder(self) -> TextQueryEncoder:
        return self.module.encoder

    def evaluate(self) -> float:
        """Loss on a fixed held batch of pairs (eval mode, no gradient)."""
        was_training = self.module.training
        self.module.eval()
        with torch.no_grad():
            loss = float(self.module(self.eval_batch))
        self.module.train(was_training)
        return loss

    def run(self) -> dict[str, float]:
        """Train, write ``output_file``; return ``initial_loss``/``final_loss`` on the held batch and the last
        logged training metrics."""
        self.module.to(self.device)
        initial = self.evaluate()
        handlers = [
            RunCheckpoint(self.checkpoint_dir, {"model": self.module, "optimizer": self.optimizer, "scheduler": self.scheduler,
                                                "batches": self.batches}, self.checkpoint_every),
            LrScheduleHandler(self.scheduler, print_lr=False, epoch_level=False),
            TrainingLog(self.log_every, self.progress),
            ModelExport({self.output_file: self.encoder}, self.checkpoint_dir,
                        protected=[self.init_checkpoint] if self.init_checkpoint else []),
        ]
        if self.tracking_uri:
            handlers.append(mlflow_handler(self.tracking_uri, self.experiment_name, params=self.params, log_every=self.log_every))
        trainer = LossTrainer(self.module, self.batches, self.optimizer, self.steps, device=self.device, train_handlers=handlers)
        trainer.run()
        metrics = dict(trainer.state.metrics)
        final = self.evaluate()
        logger.info("knowledge pretraining: held-batch loss %.4f -> %.4f; wrote %s", initial, final, self.output_file)
        return {"initial_loss": initial, "final_loss": final, **metrics}
