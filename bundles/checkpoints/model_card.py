"""``training.json``: the card the trainer writes beside every exported model, and how it is read.

It holds the run identity, the step count, the checksums of the exported files and the config files (and
merged config) the model was trained with. Readers use the config files to run the model with the same
network settings: every file that is not a run config (train/inference/evaluate) is an overlay that
describes the model (``configs/demo.json``, a size overlay, ...).
"""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["CARD_NAME", "RUN_CONFIGS", "model_overlays", "read_model_card"]

#: File name of the card inside a model folder.
CARD_NAME = "training.json"
#: Config files that start a run rather than describe a model's settings.
RUN_CONFIGS = ("train.json", "multi_gpu_train.json", "inference.json", "evaluate.json", "batch_inference.json")


def read_model_card(model_dir: str | PathLike) -> dict[str, Any] | None:
    """The card of a model folder, or None when it has none (official weights) or it is unreadable."""
    try:
        card = json.loads((Path(model_dir) / CARD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def model_overlays(card: dict[str, Any] | None) -> list[str]:
    """The config files of a card that describe the model (all but :data:`RUN_CONFIGS`), as recorded."""
    files = (card or {}).get("config_files") or []
    return [str(f) for f in files if Path(str(f)).name not in RUN_CONFIGS]
