"""Convert SAT's official text-encoder checkpoints to our key names and back.

Official files (official SAT checkpoints): ``text_encoder.pth`` = ``{'step', 'model_state_dict'}`` saved
from a DDP-wrapped module, so every key starts with ``module.``. The recipe:

1. strip ``module.``;
2. drop the ``embeddings.position_ids`` / ``embeddings.token_type_ids`` buffers (constant index tensors,
   saved by transformers 4.21.3, non-persistent in current versions);
3. drop ``atlas_tower.*`` and ``temperature`` (present in SAT-Pretrain files; they belong to the
   pretraining's image branch and loss, not to the text encoder; the official loader drops them too);
4. a 5-row ``modality_embed`` (SAT-Pretrain cvpr25 code, row 4 = microscopy) is refused unless truncation
   to SAT main's 4 rows (ct, mri, us, pet) is asked for explicitly;
5. everything else must match a freshly built encoder of that kind key by key and shape by shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from os import PathLike

import torch
from transformers import PretrainedConfig

from bundles.checkpoints.loading import DDP_PREFIX, check_state_dict, read_official_state_dict
from bundles.errors import CheckpointError
from bundles.networks.sat.modality_rows import MODALITY_ROWS
from bundles.networks.sat.text_encoder import build_text_encoder, canonical_kind, default_tower_config

__all__ = ["OFFICIAL_KIND", "convert_official_text_encoder", "export_official_text_encoder", "text_encoder_shapes"]

logger = logging.getLogger(__name__)

#: Our kind -> the official ``--text_encoder`` option value (SAT ``model/text_encoder.py``).
OFFICIAL_KIND = {"knowledge": "ours", "medcpt": "medcpt", "basebert": "basebert"}

_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")
_PRETRAIN_PREFIXES = ("atlas_tower.", "temperature")
_SEGMENTATION_PREFIXES = ("backbone.", "transformer_decoder.", "mask_embed_proj.")
_MODALITY_KEY = "modality_embed.weight"


def _official_kind(kind: str) -> str:
    name = canonical_kind(kind)
    if name not in OFFICIAL_KIND:
        raise CheckpointError(f"the {name!r} text encoder has no official checkpoint format; use {sorted(OFFICIAL_KIND)}")
    return name


@lru_cache(maxsize=None)
def _default_shapes(kind: str) -> dict[str, torch.Size]:
    return text_encoder_shapes(kind, default_tower_config(kind))


def text_encoder_shapes(kind: str, config: PretrainedConfig | None = None) -> dict[str, torch.Size]:
    """Key -> shape of our encoder of official ``kind``, built on the meta device (no weights, no download).

    Args:
        config: tower geometry; default the released one (:func:`default_tower_config`).
    """
    if config is None:
        return _default_shapes(canonical_kind(kind))
    with torch.device("meta"):
        encoder = build_text_encoder(kind, config=config)
    return {k: v.shape for k, v in encoder.state_dict().items()}


def convert_official_text_encoder(
    state_or_path: Mapping[str, torch.Tensor] | str | PathLike,
    kind: str,
    *,
    truncate_modality_embed: bool = False,
    config: PretrainedConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Official text-encoder state dict (or file) -> our state dict, checked strictly.

    Args:
        state_or_path: a state dict, or a checkpoint file or dump (containers such as ``model_state_dict``
            unwrapped; see :func:`~bundles.checkpoints.loading.read_official_state_dict`).
        kind: ``"knowledge"``/``"ours"``, ``"medcpt"`` or ``"basebert"``.
        truncate_modality_embed: keep the first 4 rows of a 5-row ``modality_embed`` (drops microscopy).
        config: tower geometry to check against; default the released one.

    Returns:
        Our state dict (keys of :func:`text_encoder_shapes`), tensors shared with the input.

    Raises:
        CheckpointError: unreadable file; a segmentation checkpoint; a 5-row modality embedding without
            ``truncate_modality_embed``; any missing, unexpected or mis-shaped key (listed).
    """
    kind = _official_kind(kind)
    state, source = read_official_state_dict(state_or_path, f"official {OFFICIAL_KIND[kind]}")
    if any(k.startswith(_SEGMENTATION_PREFIXES) for k in state):
        raise CheckpointError(f"{source}: this is a SAT segmentation checkpoint, not a text encoder")
    buffers = [k for k in state if k.endswith(_BUFFER_SUFFIXES)]
    pretrain = [k for k in state if k.startswith(_PRETRAIN_PREFIXES)]
    if buffers:
        logger.info("%s: dropped %d constant index buffers (%s), recomputed by transformers", source, len(buffers), ", ".join(buffers))
    if pretrain:
        logger.warning(
            "%s: dropped %d SAT-Pretrain keys (atlas_tower.*, temperature: image branch and loss of the pretraining). "
            "This is a knowledge-pretraining checkpoint: a starting point for training SAT, not the text encoder "
            "of a released segmentation model",
            source,
            len(pretrain),
        )
    dropped = set(buffers) | set(pretrain)
    state = {k: v for k, v in state.items() if k not in dropped}
    rows = state[_MODALITY_KEY].shape[0] if _MODALITY_KEY in state else len(MODALITY_ROWS)
    if rows == len(MODALITY_ROWS) + 1:
        if not truncate_modality_embed:
            raise CheckpointError(
                f"{source}: modality_embed has 5 rows (SAT-Pretrain cvpr25 code, row 4 = microscopy) but SAT main "
                "uses 4 (ct, mri, us, pet); convert with truncate_modality_embed=True to drop the microscopy row"
            )
        logger.warning("%s: modality_embed truncated from 5 to 4 rows (microscopy row dropped)", source)
        state[_MODALITY_KEY] = state[_MODALITY_KEY][: len(MODALITY_ROWS)]
    check_state_dict(text_encoder_shapes(kind, config), state, source=source)
    return state


def export_official_text_encoder(
    our_state: Mapping[str, torch.Tensor], kind: str, *, config: PretrainedConfig | None = None
) -> dict[str, torch.Tensor]:
    """Our state dict -> official key names (``module.`` prefix); inverse of :func:`convert_official_text_encoder`.

    Args:
        config: tower geometry to check against; default the released one.

    Raises:
        CheckpointError: ``our_state`` does not fit our encoder of ``kind`` (keys listed).
    """
    kind = _official_kind(kind)
    check_state_dict(text_encoder_shapes(kind, config), our_state, source=f"our {kind} text-encoder state dict")
    return {DDP_PREFIX + k: v for k, v in our_state.items()}
