"""SAMed's official LoRA file: what it holds, how its keys map to ours, and writing one back (``export``).

Layout (hitachinsk/SAMed ``save_lora_parameters``; ``torch.save`` of one flat dict, no ``module.`` prefix):
- ``w_a_{i:03d}`` (r, C) and ``w_b_{i:03d}`` (C, r): index 2k = block k's query update, 2k + 1 = its value
  update -> our ``image_encoder.blocks.k.attn.qkv.linear_{a,b}_{q,v}.weight``;
- every ``prompt_encoder.*`` and ``mask_decoder.*`` key under SAM's own names (= ours);
- SAMed_s only: decoder LoRA (``sa_*``, ``cti_*``, ``cit_*``, ``fati_*``; see :data:`DECODER_LORA`) and no
  ``mask_decoder.transformer.*`` keys (its decoder transformer is SAM's, frozen).
The file holds no image-encoder base weights: it only works on the SAM checkpoint it was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from bundles.errors import CheckpointError
from bundles.networks.sam.variants import SAM_ENCODERS

__all__ = ["LoRAFileLayout", "DECODER_LORA", "describe", "encoder_lora_keys", "decoder_lora_deltas", "to_lora_file"]

_ENCODER = re.compile(r"^w_([ab])_(\d{3})$")
_SLOTS = ("q", "v")

#: SAMed_s decoder LoRA groups -> the two-way transformer attention they adapt, indexed 2l = layer l's q_proj,
#: 2l + 1 = its v_proj (``sam_lora_image_encoder_mask_decoder.py``); ``fati_*`` adapts the final attention.
DECODER_LORA = {
    "sa": "layers.{layer}.self_attn",
    "cti": "layers.{layer}.cross_attn_token_to_image",
    "cit": "layers.{layer}.cross_attn_image_to_token",
}


@dataclass(frozen=True)
class LoRAFileLayout:
    """What a LoRA file is for: SAM ``variant`` (from C and the block count), LoRA ``rank``, ``num_classes``
    (mask tokens - 1) and whether it carries SAMed_s's decoder LoRA."""

    variant: str
    rank: int
    num_classes: int
    decoder_lora: bool


def describe(lora: Mapping[str, torch.Tensor], source: str) -> LoRAFileLayout:
    """Check a LoRA file's encoder factors and heads and say which model it belongs to.

    Raises:
        CheckpointError: no ``w_a_*``/``w_b_*`` keys, an odd or inconsistent set of factors (ranks or widths
            differ, indices missing), a width and block count that no SAM encoder has, or no mask tokens.
    """
    factors = {m.groups(): v for k, v in lora.items() if (m := _ENCODER.match(k))}
    if not factors:
        raise CheckpointError(f"{source}: not a SAMed LoRA file: no w_a_XXX / w_b_XXX keys (found {', '.join(sorted(lora)[:5])})")
    count = 1 + max(int(index) for _, index in factors)
    missing = sorted(f"w_{ab}_{i:03d}" for ab in "ab" for i in range(count) if (ab, f"{i:03d}") not in factors)
    if missing or count % 2:
        raise CheckpointError(
            f"{source}: LoRA factors must come as w_a_/w_b_ pairs numbered 000..(2 x blocks - 1); missing {', '.join(missing) or f'w_a_{count:03d}'}"
        )
    ranks = {tuple(v.shape)[0] for (ab, _), v in factors.items() if ab == "a"} | {
        tuple(v.shape)[1] for (ab, _), v in factors.items() if ab == "b"
    }
    widths = {tuple(v.shape)[1] for (ab, _), v in factors.items() if ab == "a"} | {
        tuple(v.shape)[0] for (ab, _), v in factors.items() if ab == "b"
    }
    if len(ranks) != 1 or len(widths) != 1 or any(v.ndim != 2 for v in factors.values()):
        raise CheckpointError(f"{source}: LoRA factors disagree on rank {sorted(ranks)} or width {sorted(widths)}")
    width = widths.pop()
    variants = [n for n, s in SAM_ENCODERS.items() if s["embed_dim"] == width and 2 * s["depth"] == count]
    if not variants:
        known = ", ".join(f"{name}: {2 * spec['depth']} x {spec['embed_dim']}" for name, spec in SAM_ENCODERS.items())
        raise CheckpointError(f"{source}: {count} LoRA factors of width {width} fit no SAM encoder ({known})")
    tokens = lora.get("mask_decoder.mask_tokens.weight")
    if tokens is None:
        raise CheckpointError(f"{source}: no mask_decoder.mask_tokens.weight, so the number of classes is unknown")
    return LoRAFileLayout(variants[0], ranks.pop(), tokens.shape[0] - 1, decoder_lora="sa_a_000" in lora)


def encoder_lora_keys(depth: int) -> dict[str, str]:
    """Official key -> ours for the encoder factors of ``depth`` blocks."""
    out = {}
    for block in range(depth):
        for slot_index, slot in enumerate(_SLOTS):
            index = f"{2 * block + slot_index:03d}"
            for ab in "ab":
                out[f"w_{ab}_{index}"] = f"image_encoder.blocks.{block}.attn.qkv.linear_{ab}_{slot}.weight"
    return out


def decoder_lora_deltas(lora: Mapping[str, torch.Tensor], decoder_depth: int) -> dict[str, tuple[str, str]]:
    """SAMed_s: our decoder weight key -> the (A, B) official keys whose product B @ A is added to it."""
    out: dict[str, tuple[str, str]] = {}
    for group, module in DECODER_LORA.items():
        for layer in range(decoder_depth):
            for slot_index, slot in enumerate(_SLOTS):
                index = f"{2 * layer + slot_index:03d}"
                target = f"mask_decoder.transformer.{module.format(layer=layer)}.{slot}_proj.weight"
                out[target] = (f"{group}_a_{index}", f"{group}_b_{index}")
    for slot in _SLOTS:
        out[f"mask_decoder.transformer.final_attn_token_to_image.{slot}_proj.weight"] = (f"fati_{slot}a", f"fati_{slot}b")
    return out


def to_lora_file(state: Mapping[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Our SAMed state dict -> the official LoRA-only dict (encoder factors, prompt encoder, mask decoder)."""
    out = {official: state[ours].detach().clone() for official, ours in encoder_lora_keys(depth).items()}
    for key, value in state.items():
        if key.startswith(("prompt_encoder.", "mask_decoder.")):
            out[key] = value.detach().clone()
    return out
