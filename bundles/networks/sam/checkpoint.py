"""Read an official 2D SAM checkpoint, say which variant it is, check it is the released file, and fit it
to another input size (what every family that starts from SAM's weights does: SAMed, SAM-UNet).

Official files (``sam_vit_b_01ec64.pth`` etc.) are plain state dicts: ``image_encoder.*``, ``prompt_encoder.*``,
``mask_decoder.*`` at 1024 x 1024 input. Our encoder keeps the official names; families that wrap the fused
``qkv`` (LoRA) rename it with :func:`rename_qkv`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike

import torch

from bundles.checkpoints.loading import read_official_state_dict
from bundles.checkpoints.release import file_digest
from bundles.errors import CheckpointError
from bundles.networks.sam.resize import resize_encoder_state
from bundles.networks.sam.variants import OFFICIAL_CHECKPOINT_MD5, SAM_ENCODERS

__all__ = ["file_md5", "read_sam_checkpoint", "check_official_file", "fit_to_input", "rename_qkv"]

_BLOCK = re.compile(r"^image_encoder\.blocks\.(\d+)\.")


def file_md5(path: str | PathLike) -> str:
    """Hex md5 of a file (the checksum the SAM releases are named by)."""
    return file_digest(path, "md5")


def read_sam_checkpoint(path: str | PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """An official SAM file -> (state dict, variant name of :data:`SAM_ENCODERS`).

    Raises:
        CheckpointError: unreadable, no ``image_encoder.pos_embed``, or a width / depth no SAM has.
    """
    state, _ = read_official_state_dict(path, "SAM")
    pos = state.get("image_encoder.pos_embed")
    if pos is None or pos.ndim != 4:
        raise CheckpointError(f"{path}: not a 2D SAM checkpoint: no image_encoder.pos_embed (1, 64, 64, C) (found {', '.join(sorted(state)[:5])})")
    depth = len({int(m.group(1)) for k in state if (m := _BLOCK.match(k))})
    width = pos.shape[-1]
    for name, spec in SAM_ENCODERS.items():
        if spec["embed_dim"] == width and spec["depth"] == depth:
            return state, name
    raise CheckpointError(f"{path}: a SAM image encoder of {depth} blocks x {width} channels is none of {', '.join(SAM_ENCODERS)}")


def check_official_file(path: str | PathLike, variant: str) -> str:
    """Check ``path`` is the released SAM ``variant`` file by its md5; return the md5.

    Raises:
        CheckpointError: another file (named, with both checksums and the file to use).
    """
    md5 = file_md5(path)
    expected = OFFICIAL_CHECKPOINT_MD5[variant]
    if md5 != expected:
        raise CheckpointError(
            f"{path}: md5 {md5} is not the released SAM {variant} checkpoint (sam_{variant}_{expected[:6]}.pth, md5 {expected})"
        )
    return md5


def fit_to_input(state: Mapping[str, torch.Tensor], variant: str, img_size: int, patch_size: int = 16) -> dict[str, torch.Tensor]:
    """Resize ``pos_embed`` and the global rel-pos tables for ``img_size`` input (see :mod:`.resize`)."""
    return resize_encoder_state(state, img_size // patch_size, SAM_ENCODERS[variant]["global_attn_indexes"])


def rename_qkv(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``...attn.qkv.{weight,bias}`` -> ``...attn.qkv.qkv.{weight,bias}``: the base linear inside a LoRA wrapper."""
    return {re.sub(r"\.attn\.qkv\.(weight|bias)$", r".attn.qkv.qkv.\1", k): v for k, v in state.items()}
