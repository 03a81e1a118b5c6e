"""Sizes of the official 2D SAM models (segment-anything ``build_sam.py``) and the checksums of their weights.

Every 2D SAM has patch 16, 14 x 14 attention windows, a 256-channel image embedding and prompt space, a
2-layer two-way transformer (8 heads, MLP 2048) and 3 + 1 mask tokens; the image encoders differ in width,
depth, heads and which blocks attend globally. Families that build on SAM (SAMed, SAM-UNet) take an
encoder's sizes from :data:`SAM_ENCODERS` by name instead of restating them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SAM_ENCODERS", "SAM_SHARED", "OFFICIAL_CHECKPOINT_MD5", "OFFICIAL_INPUT_SIZE"]

#: Image-encoder sizes per variant (``build_sam_vit_b`` / ``_l`` / ``_h``).
SAM_ENCODERS: dict[str, dict[str, Any]] = {
    "vit_b": dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}

#: Sizes every 2D SAM shares (``_build_sam``): patch, window, prompt / embedding channels, decoder.
SAM_SHARED: dict[str, Any] = dict(
    patch_size=16, window_size=14, prompt_dim=256, decoder_depth=2, decoder_heads=8, decoder_mlp_dim=2048
)

#: The input side the official checkpoints were trained at (pos_embed 64 x 64 tokens, global rel-pos tables 127).
OFFICIAL_INPUT_SIZE = 1024

#: md5 of the released files (the hex in their names is its first 6 digits): sam_vit_b_01ec64.pth,
#: sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth (dl.fbaipublicfiles.com/segment_anything/).
OFFICIAL_CHECKPOINT_MD5 = {
    "vit_b": "01ec64d29a2fca3f0661936605ae66f8",
    "vit_l": "0b3195507c641ddb6910d2bb5adee89c",
    "vit_h": "4b8939a88964f0f4ff5f5b2642c598a6",
}
