"""Resize the input-size-dependent tensors of a SAM image encoder's state dict to another input size.

SAM's checkpoints were trained at 1024 x 1024 (64 x 64 tokens); SAMed runs at 512 and SAM-UNet at 256. The
encoder adds ``pos_embed`` without interpolating at run time and its global-attention blocks hold relative
position tables of length 2 * tokens - 1, so both are resized once, when the checkpoint is loaded, the way
SAMed's ``load_from`` does (hitachinsk/SAMed ``segment_anything/build_sam.py``):

- ``pos_embed`` (1, G0, G0, C) -> (1, G, G, C): bilinear, ``align_corners=False``, no antialiasing;
- ``blocks.N.attn.rel_pos_{h,w}`` of the global blocks (2 G0 - 1, c) -> (2 G - 1, c): the same bilinear
  resize of the table seen as a one-channel image (the width c is unchanged, so this is linear along its
  length); windowed blocks' tables depend on the window only and are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = ["resize_encoder_state"]


def _resize_table(table: torch.Tensor, length: int) -> torch.Tensor:
    out = F.interpolate(table[None, None].float(), size=(length, table.shape[1]), mode="bilinear", align_corners=False)
    return out[0, 0].to(table.dtype)


def resize_encoder_state(
    state: Mapping[str, torch.Tensor], grid: int, global_attn_indexes: Sequence[int], prefix: str = "image_encoder."
) -> dict[str, torch.Tensor]:
    """A copy of ``state`` with the encoder's ``pos_embed`` and global rel-pos tables resized to a token grid
    of side ``grid`` (input side / patch); other keys untouched, tensors already at that size kept as they are.

    Args:
        state: a SAM state dict (any prefix; only ``<prefix>pos_embed`` and ``<prefix>blocks.N.attn.rel_pos_*``
            of the global blocks change).
        grid: target token-grid side (32 for 512 input, 16 for 256).
        global_attn_indexes: the blocks with global attention (``SAM_ENCODERS[variant]``).
        prefix: the encoder's key prefix.
    """
    out = dict(state)
    pos_key = f"{prefix}pos_embed"
    if pos_key in out and out[pos_key].shape[1] != grid:
        pos = out[pos_key].permute(0, 3, 1, 2).float()
        pos = F.interpolate(pos, size=(grid, grid), mode="bilinear", align_corners=False)
        out[pos_key] = pos.permute(0, 2, 3, 1).to(state[pos_key].dtype).contiguous()
    for index in global_attn_indexes:
        for axis in ("h", "w"):
            key = f"{prefix}blocks.{index}.attn.rel_pos_{axis}"
            if key in out and out[key].shape[0] != 2 * grid - 1:
                out[key] = _resize_table(out[key], 2 * grid - 1).contiguous()
    return out
