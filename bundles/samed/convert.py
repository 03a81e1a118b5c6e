"""Build our SAMed state dict from the official SAM checkpoint and a SAMed LoRA file, and export it back.

SAMed releases only LoRA files (``epoch_159.pth`` of SAMed, SAMed_s, SAMed_h): the image encoder's base
weights come from the SAM checkpoint the LoRA was trained on, resized from 1024 to the model's input the
way SAMed does (:mod:`bundles.networks.sam.resize`). Conversion:

1. read the SAM file (its variant from its shapes) and the LoRA file (:func:`~.lora_file.describe`);
2. check the pair belongs together (:func:`check_base`): a LoRA file on another base loads fine and
   segments nothing, so the SAM file must be the released one of the LoRA's variant (md5), or the one named
   in the record our ``export`` writes beside a LoRA file trained here;
3. encoder: SAM's weights, resized, fused ``qkv`` as the LoRA wrapper's base, plus the LoRA factors;
   prompt encoder and mask decoder: the LoRA file's (SAMed trains them in full); SAMed_s: the decoder
   transformer is SAM's with the decoder LoRA merged into its q/v projections (W + B A, the same outputs
   to float rounding), so it loads into the plain ``vit_b`` network;
4. a strict check against ``SAMed.build(variant, img_size=..., num_classes=..., rank=...)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import torch

from bundles.checkpoints.conversion import Conversion
from bundles.checkpoints.loading import check_state_dict, read_state_dict, strip_prefix
from bundles.checkpoints.release import file_sha256
from bundles.errors import CheckpointError
from bundles.io.atomic import atomic_torch_save, atomic_write_json
from bundles.networks.sam.checkpoint import check_official_file, file_md5, fit_to_input, read_sam_checkpoint, rename_qkv
from bundles.networks.sam.variants import OFFICIAL_CHECKPOINT_MD5
from bundles.networks.samed import VARIANTS, SAMed
from bundles.samed.lora_file import LoRAFileLayout, decoder_lora_deltas, describe, encoder_lora_keys, to_lora_file

__all__ = ["SAMedConversion", "base_record_path", "check_base", "convert_samed", "export_lora"]


@dataclass
class SAMedConversion:
    """The converted state dict with the fate of every key of both files, what the LoRA file is, and the
    SAM base's md5."""

    conversion: Conversion
    layout: LoRAFileLayout
    sam_md5: str


def base_record_path(lora: str | PathLike) -> Path:
    """Where ``export`` records the SAM base of a LoRA file: ``<lora file>.json``."""
    return Path(f"{lora}.json")


def check_base(sam_checkpoint: str | PathLike, lora: str | PathLike, variant: str) -> str:
    """The SAM file must be the base the LoRA file was trained on; return its md5.

    A LoRA file with a record beside it (:func:`base_record_path`, written by :func:`export_lora`) names its
    base's md5; a LoRA file without one is an official release, trained on the released SAM checkpoint.

    Raises:
        CheckpointError: another base (both files and checksums named), or an unreadable record.
    """
    record_path = base_record_path(lora)
    if not record_path.is_file():
        return check_official_file(sam_checkpoint, variant)
    try:
        expected = json.loads(record_path.read_text(encoding="utf-8"))["sam_base"]["md5"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{record_path}: unreadable SAM-base record ({e}); export the LoRA file again") from e
    md5 = file_md5(sam_checkpoint)
    if md5 != expected:
        raise CheckpointError(
            f"{sam_checkpoint}: md5 {md5}, but {lora} was trained on the SAM base with md5 {expected} ({record_path}); "
            "a LoRA file on another base segments nothing: pass that SAM file"
        )
    return md5


def _expect(layout: LoRAFileLayout, lora: str | PathLike, rank: int, num_classes: int) -> None:
    if layout.rank != rank:
        raise CheckpointError(
            f"{lora}: LoRA rank {layout.rank}, but the network is built with rank {rank}; pass --rank {layout.rank} "
            f"and set the same rank in the bundle's network_def"
        )
    if layout.num_classes != num_classes:
        raise CheckpointError(
            f"{lora}: {layout.num_classes} classes (+ background), but the network is built for {num_classes}; pass "
            f"--num_classes {layout.num_classes} and set the same in the bundle's network_def"
        )


def convert_samed(
    sam_checkpoint: str | PathLike, lora: str | PathLike, img_size: int = 512, rank: int = 4, num_classes: int = 8
) -> SAMedConversion:
    """Official SAM file + SAMed LoRA file -> a state dict that loads strictly into
    ``SAMed.build(layout.variant, img_size=img_size, num_classes=num_classes, rank=rank)``.

    Raises:
        CheckpointError: unreadable files, not SAM / not a LoRA file, variants that differ, another rank or
            class count than asked, another SAM base (:func:`check_base`), or keys that do not fit (named).
    """
    sam, sam_variant = read_sam_checkpoint(sam_checkpoint)
    lora_state = strip_prefix(read_state_dict(lora, allow_pickle=True), "module.")
    layout = describe(lora_state, str(lora))
    if layout.variant != sam_variant:
        raise CheckpointError(f"{lora}: a SAMed LoRA for SAM {layout.variant}, but {sam_checkpoint} is SAM {sam_variant}")
    if layout.variant not in VARIANTS:
        raise CheckpointError(f"{lora}: a LoRA for SAM {layout.variant}; SAMed exists for {', '.join(VARIANTS)}")
    _expect(layout, lora, rank, num_classes)
    sam_md5 = check_base(sam_checkpoint, lora, layout.variant)
    spec = VARIANTS[layout.variant]
    conversion = Conversion(state={})
    base = rename_qkv(fit_to_input(sam, layout.variant, img_size, spec["patch_size"]))
    state = {k: v for k, v in base.items() if k.startswith("image_encoder.")}
    conversion.used += [f"SAM {k}" for k in sam if k.startswith("image_encoder.")]
    for key in sam:
        if key.startswith(("prompt_encoder.", "mask_decoder.")):
            if key in lora_state:
                conversion.dropped[f"SAM {key}"] = "replaced by the LoRA file's trained value"
            elif layout.decoder_lora and key.startswith("mask_decoder.transformer."):
                state[key] = sam[key]
                conversion.used.append(f"SAM {key}")
            else:
                conversion.dropped[f"SAM {key}"] = "not in a SAMed model of this class count (SAM's multimask heads)"
    for official, ours in encoder_lora_keys(spec["depth"]).items():
        state[ours] = lora_state[official]
        conversion.used.append(f"LoRA {official}")
    for key, value in lora_state.items():
        if key.startswith(("prompt_encoder.", "mask_decoder.")):
            state[key] = value
            conversion.used.append(f"LoRA {key}")
    if layout.decoder_lora:
        for target, (a, b) in decoder_lora_deltas(lora_state, spec["decoder_depth"]).items():
            if a not in lora_state or b not in lora_state or target not in state:
                raise CheckpointError(f"{lora}: SAMed_s decoder LoRA {a} / {b} (or SAM's {target}) missing")
            state[target] = state[target] + lora_state[b].float() @ lora_state[a].float()
            conversion.used += [f"LoRA {a}", f"LoRA {b}"]
    leftover = set(lora_state) - {u[len("LoRA ") :] for u in conversion.used if u.startswith("LoRA ")}
    if leftover:
        raise CheckpointError(f"{lora}: keys this converter does not know: {', '.join(sorted(leftover)[:8])}")
    with torch.device("meta"):
        expected = SAMed.build(layout.variant, img_size=img_size, num_classes=num_classes, rank=rank).state_dict()
    check_state_dict(expected, state, source=f"{sam_checkpoint} + {lora}")
    conversion.state = {k: state[k].detach().to(torch.float32).contiguous() for k in expected}
    return SAMedConversion(conversion, layout, sam_md5)


def export_lora(model: str | PathLike, sam_checkpoint: str | PathLike, output: str | PathLike, img_size: int = 512) -> Path:
    """A SAMed model of ours (``models/model.pt``) -> the official LoRA-only file at ``output`` plus the record of
    its SAM base beside it (:func:`base_record_path`); both written atomically.

    The model's frozen encoder must be that SAM checkpoint resized for ``img_size`` (checked tensor by tensor):
    the LoRA file is useless on any other base.

    Raises:
        CheckpointError: unreadable files, not a SAMed state dict, or an encoder that is not ``sam_checkpoint``'s.
    """
    state = read_state_dict(model)
    sam, variant = read_sam_checkpoint(sam_checkpoint)
    if variant not in VARIANTS:
        raise CheckpointError(f"{sam_checkpoint}: SAM {variant}; SAMed exists for {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    base = rename_qkv(fit_to_input(sam, variant, img_size, spec["patch_size"]))
    encoder_keys = [k for k in base if k.startswith("image_encoder.")]
    missing = [k for k in encoder_keys if k not in state]
    if missing:
        raise CheckpointError(f"{model}: not a SAMed model on SAM {variant} at {img_size}: missing {', '.join(missing[:5])}")
    differing = [k for k in encoder_keys if tuple(state[k].shape) != tuple(base[k].shape) or not torch.equal(state[k].float(), base[k].float())]
    if differing:
        raise CheckpointError(
            f"{model}: its image encoder is not {sam_checkpoint} (e.g. {differing[0]} differs); a LoRA file only works on "
            "the base it was trained on, so export needs that SAM checkpoint"
        )
    path = atomic_torch_save(to_lora_file(state, spec["depth"]), output)
    md5 = file_md5(sam_checkpoint)
    official = {v: k for k, v in OFFICIAL_CHECKPOINT_MD5.items()}.get(md5)
    atomic_write_json(
        base_record_path(path),
        {
            "lora": {"file": path.name, "sha256": file_sha256(path)},
            "sam_base": {"file": Path(sam_checkpoint).name, "md5": md5, "official": official is not None, "variant": variant},
            "img_size": img_size,
        },
    )
    return path
