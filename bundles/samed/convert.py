"""Build our SAMed state dict from the official SAM checkpoint and a SAMed LoRA file, and export it back; the
``python -m bundles.samed.convert`` command (:func:`main`).

    python -m bundles.samed.convert --sam_checkpoint sam_vit_b_01ec64.pth --lora epoch_159.pth --output samed_lora/models/model.pt
    python -m bundles.samed.convert export --model samed_lora/models/model.pt --sam_checkpoint sam_vit_b_01ec64.pth --output samed_lora.pth

SAMed releases only LoRA files (``epoch_159.pth`` of SAMed, SAMed_s, SAMed_h): the image encoder's base
weights come from the SAM checkpoint the LoRA was trained on, resized from 1024 to the model's input the
way SAMed does (:mod:`bundles.networks.sam.resize`). Conversion:

1. read the SAM file (its variant from its shapes) and the LoRA file (:func:`~.lora_file.describe`);
2. check the pair belongs together (:func:`check_base`): a LoRA file on another base loads fine and
   segments nothing, so the SAM file must be the released one of the LoRA's variant (md5), the one named
   in the record ``export`` writes beside a LoRA file trained here, or, with ``custom_base``, a base the
   user vouches for (a fine-tuned SAM), recorded by path and md5 in the ``release.json`` written beside
   the model;
3. encoder: SAM's weights, resized, fused ``qkv`` as the LoRA wrapper's base, plus the LoRA factors;
   prompt encoder and mask decoder: the LoRA file's (SAMed trains them in full); SAMed_s: the decoder
   transformer is SAM's with the decoder LoRA merged into its q/v projections (W + B A, the same outputs
   to float rounding), so it loads into the plain ``vit_b`` network;
4. a strict check against ``SAMed.build(variant, img_size=..., num_classes=..., rank=...)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import torch

from bundles.checkpoints.conversion import Conversion, conversion_summary
from bundles.checkpoints.converter import print_summary, run_converter, save_converted
from bundles.checkpoints.loading import check_state_dict, read_official_state_dict, read_state_dict
from bundles.checkpoints.release import file_sha256, write_release_record
from bundles.errors import CheckpointError
from bundles.io.atomic import atomic_write_json
from bundles.networks.sam.checkpoint import check_official_file, file_md5, fit_to_input, read_sam_checkpoint, rename_qkv
from bundles.networks.sam.variants import OFFICIAL_CHECKPOINT_MD5
from bundles.networks.samed import VARIANTS, SAMed
from bundles.samed.lora_file import LoRAFileLayout, decoder_lora_deltas, describe, encoder_lora_keys, to_lora_file

__all__ = [
    "SAMedConversion",
    "base_record_path",
    "check_base",
    "convert_samed",
    "official_lora",
    "write_base_record",
    "convert",
    "export",
    "main",
]


@dataclass
class SAMedConversion:
    """The converted state dict with the fate of every key of both files, what the LoRA file is, the SAM
    base's md5 and whether the base is a released SAM file."""

    conversion: Conversion
    layout: LoRAFileLayout
    sam_md5: str
    sam_released: bool


def base_record_path(lora: str | PathLike) -> Path:
    """Where ``export`` records the SAM base of a LoRA file: ``<lora file>.json``."""
    return Path(f"{lora}.json")


def check_base(sam_checkpoint: str | PathLike, lora: str | PathLike, variant: str, custom_base: bool = False) -> str:
    """The SAM file must be the base the LoRA file was trained on; return its md5.

    A LoRA file with a record beside it (:func:`base_record_path`, written by :func:`write_base_record`) names
    its base's md5, which must match (``custom_base`` or not); a LoRA file without one was trained on the
    released SAM checkpoint of its variant, unless ``custom_base`` says the base is another file (a
    fine-tuned SAM), which is then taken as it is.

    Raises:
        CheckpointError: another base (both files and checksums named), or an unreadable record.
    """
    record_path = base_record_path(lora)
    if not record_path.is_file():
        if custom_base:
            return file_md5(sam_checkpoint)
        try:
            return check_official_file(sam_checkpoint, variant)
        except CheckpointError as error:
            raise CheckpointError(
                f"{error}; if {Path(lora).name} was trained on this base on purpose (a fine-tuned SAM), pass --custom_base, "
                "which records the base's path and md5 in release.json"
            ) from None
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
    sam_checkpoint: str | PathLike,
    lora: str | PathLike,
    img_size: int = 512,
    rank: int = 4,
    num_classes: int = 8,
    custom_base: bool = False,
) -> SAMedConversion:
    """Official SAM file + SAMed LoRA file -> a state dict that loads strictly into
    ``SAMed.build(layout.variant, img_size=img_size, num_classes=num_classes, rank=rank)``.

    Args:
        custom_base: accept a SAM file that is not the released one (see :func:`check_base`).

    Raises:
        CheckpointError: unreadable files, not SAM / not a LoRA file, variants that differ, another rank or
            class count than asked, another SAM base (:func:`check_base`), or keys that do not fit (named).
    """
    sam, sam_variant = read_sam_checkpoint(sam_checkpoint)
    lora_state, _ = read_official_state_dict(lora, "SAMed LoRA")
    layout = describe(lora_state, str(lora))
    if layout.variant != sam_variant:
        raise CheckpointError(f"{lora}: a SAMed LoRA for SAM {layout.variant}, but {sam_checkpoint} is SAM {sam_variant}")
    if layout.variant not in VARIANTS:
        raise CheckpointError(f"{lora}: a LoRA for SAM {layout.variant}; SAMed exists for {', '.join(VARIANTS)}")
    _expect(layout, lora, rank, num_classes)
    sam_md5 = check_base(sam_checkpoint, lora, layout.variant, custom_base)
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
    return SAMedConversion(conversion, layout, sam_md5, OFFICIAL_CHECKPOINT_MD5.get(layout.variant) == sam_md5)


def official_lora(model: str | PathLike, sam_checkpoint: str | PathLike, img_size: int = 512) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A SAMed model of ours (``models/model.pt``) -> the official LoRA-only state dict and what identifies its SAM base.

    The model's frozen encoder must be that SAM checkpoint resized for ``img_size`` (checked tensor by tensor):
    the LoRA file is useless on any other base.

    Returns:
        ``(lora_state, sam_base)``: the file's content, and ``{"file", "md5", "official", "variant"}`` of the base
        (for :func:`write_base_record`).

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
    md5 = file_md5(sam_checkpoint)
    sam_base = {"file": Path(sam_checkpoint).name, "md5": md5, "official": OFFICIAL_CHECKPOINT_MD5.get(variant) == md5, "variant": variant}
    return to_lora_file(state, spec["depth"]), sam_base


def write_base_record(lora: str | PathLike, sam_base: dict[str, Any], img_size: int) -> Path:
    """Write the record of a LoRA file's SAM base beside it (:func:`base_record_path`, atomically), with the
    LoRA file's sha256; :func:`check_base` then accepts the file on that base only."""
    lora = Path(lora)
    record = {"lora": {"file": lora.name, "sha256": file_sha256(lora)}, "sam_base": sam_base, "img_size": img_size}
    return atomic_write_json(base_record_path(lora), record)


def convert(
    sam_checkpoint: str,
    lora: str,
    output: str = "samed_lora/models/model.pt",
    img_size: int = 512,
    rank: int = 4,
    num_classes: int = 8,
    custom_base: bool = False,
) -> dict[str, Any]:
    """Official SAM checkpoint + SAMed / SAMed_s / SAMed_h LoRA file -> our SAMed state dict file.

    Writes the model and, beside it, release.json (the model's sha256, the SAM base's path and md5, the LoRA
    file's sha256); prints the variant (set network_def to it for SAMed_h), the keys used and dropped and the
    checksums. To write a model back as an official LoRA file: python -m bundles.samed.convert export --help.

    Args:
        sam_checkpoint: the SAM file the LoRA was trained on (sam_vit_b_01ec64.pth; SAMed_h: sam_vit_h_4b8939.pth);
            it must be the released file (checked by md5) or the base recorded beside the LoRA file by export.
        lora: the SAMed LoRA file (epoch_159.pth of SAMed, SAMed_s or SAMed_h, or one written by export).
        output: where to write our state dict (a plain {key: tensor} dict, torch.save; default samed_lora/models/model.pt,
            the bundle's weights, relative to where you run it).
        img_size: the network's input side (512 for every released SAMed).
        rank: the LoRA rank the network is built with (4 in every release); a file of another rank is refused.
        num_classes: foreground classes of the network (8: the Synapse organs); a file with another count is refused.
        custom_base: the SAM file is not a released one (e.g. a SAM you fine-tuned, the LoRA trained on it): skip
            the md5 check against the releases and record the base's path and md5 in release.json instead.
    """
    result = convert_samed(sam_checkpoint, lora, img_size=img_size, rank=rank, num_classes=num_classes, custom_base=custom_base)
    variant = result.layout.variant + (" (SAMed_s: decoder LoRA merged into the decoder)" if result.layout.decoder_lora else "")
    sam_base = {"file": str(Path(sam_checkpoint).resolve()), "md5": result.sam_md5, "released": result.sam_released}
    facts = {"variant": variant, "sam_base": sam_base["file"], "sam_base_md5": result.sam_md5, "sam_base_released": result.sam_released,
             **conversion_summary(result.conversion)}
    summary = save_converted(result.conversion.state, output, facts, source=lora)
    base = f"the released SAM {result.layout.variant}" if result.sam_released else f"a SAM base that is not a released file (md5 {result.sam_md5})"
    record = write_release_record(
        Path(output).parent,
        {"model": Path(output).name},
        f"SAMed LoRA {Path(lora).name} on {base}",
        sources={"sam_base": sam_base, "lora": {"file": str(Path(lora).resolve()), "sha256": summary["source_sha256"]}},
    )
    print_summary({"release_record": record})
    return {**summary, "release_record": str(record)}


def export(model: str, sam_checkpoint: str, output: str, img_size: int = 512) -> dict[str, Any]:
    """Our SAMed model file -> the official SAMed LoRA file (w_a_XXX / w_b_XXX + heads) + the record of its SAM base.

    The file loads in the official SAMed code (load_lora_parameters) and in this converter; the record
    (<output>.json: the base's file name and md5) makes the converter refuse it on any other base. The
    model's encoder must be that SAM checkpoint (checked tensor by tensor).

    Args:
        model: our SAMed model file (e.g. samed_lora/models/model.pt, converted or fine-tuned).
        sam_checkpoint: the SAM checkpoint the model's encoder was built from.
        output: the LoRA file to write (.pth).
        img_size: the model's input side (512).
    """
    lora_state, sam_base = official_lora(model, sam_checkpoint, img_size)
    summary = save_converted(lora_state, output, {"variant": sam_base["variant"], "keys": len(lora_state)}, source=model)
    record = write_base_record(output, sam_base, img_size)
    print_summary({"sam_base_record": record})
    return {**summary, "sam_base_record": str(record)}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bundles.samed.convert --sam_checkpoint ... --lora ...`` (convert), or with ``export`` as the first
    argument the export back, on ``argv`` (default the process's arguments); the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["export"]:
        return run_converter(export, args[1:], "bundles.samed.convert export")
    return run_converter(convert, args, "bundles.samed.convert")


if __name__ == "__main__":
    sys.exit(main())
