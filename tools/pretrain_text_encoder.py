"""Knowledge pretraining of a SAT text encoder from the command line (see
:class:`bundles.sat.knowledge_pretraining.KnowledgePretraining`).

Example (offline, the packaged MiniLM tower frozen, projection trained)::

    python -m tools.pretrain_text_encoder data/knowledge/example_terms.jsonl runs/text_encoder.pt \
        --feature projected --open_layers 0 --steps 200 --batch_size 32 --lr 1e-3
"""

from __future__ import annotations

from os import PathLike

import fire

from bundles.errors import install_excepthook
from bundles.sat.knowledge_pretraining import KnowledgePretraining

__all__ = ["pretrain"]


def pretrain(
    knowledge_file: str | PathLike,
    output_file: str | PathLike,
    encoder_kind: str = "sentence",
    model_dir: str | None = None,
    init_checkpoint: str | None = None,
    feature: str = "raw",
    open_layers: int = 3,
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 1e-5,
    weight_decay: float = 0.0,
    warmup_steps: int = 100,
    seed: int = 0,
    device: str = "cpu",
    checkpoint_dir: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, float]:
    """Pretrain a text encoder on a knowledge JSON-lines file; write its state dict to ``output_file``.

    Args:
        knowledge_file: one JSON object per line: term, definition, synonyms, relations.
        output_file: trained encoder weights (our key names; `python -m bundles.sat.convert text_encoder_export` gives the official layout).
        encoder_kind: knowledge | medcpt | basebert | sentence.
        model_dir: local tower folder (config, tokenizer, weights); optional for sentence (packaged MiniLM).
        init_checkpoint: start from a converted text-encoder checkpoint instead of the folder's weights.
        feature: raw | projected | both (which features the contrastive loss sees).
        open_layers: trainable top transformer layers (SAT-Pretrain: 3 of 12).
        device: cpu, or a CUDA device such as cuda:0.
        tracking_uri: MLflow store, e.g. sqlite:////abs/path/mlruns.db (off by default).

    Returns:
        initial_loss and final_loss on a held batch, and the last logged training metrics.
    """
    install_excepthook()
    return KnowledgePretraining(
        knowledge_file,
        output_file,
        encoder_kind=encoder_kind,
        model_dir=model_dir,
        init_checkpoint=init_checkpoint,
        feature=feature,
        open_layers=open_layers,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        seed=seed,
        device=device,
        checkpoint_dir=checkpoint_dir,
        tracking_uri=tracking_uri,
    ).run()


if __name__ == "__main__":
    fire.Fire(pretrain)
