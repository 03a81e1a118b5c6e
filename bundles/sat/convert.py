"""Convert the official SAT checkpoints (SAT-Nano / SAT-Pro segmentation and text encoder) to our state dicts,
and back; the ``python -m bundles.sat.convert`` command (:func:`main`) of both bundles, ``sat_nano`` and ``sat_pro``.

    python -m bundles.sat.convert segmentation --checkpoint nano.pth --variant nano --output sat_nano/models/model.pt
    python -m bundles.sat.convert text_encoder --checkpoint text_encoder.pth --kind ours --output sat_nano/models/text_encoder.pt
    python -m bundles.sat.convert release sat_nano/models model.pt text_encoder.pt --release "SAT-Nano (zzh99/SAT)"
    python -m bundles.sat.convert export --checkpoint sat_nano/models/model.pt --variant nano --output official.pth
    python -m bundles.sat.convert text_encoder_export --checkpoint sat_nano/models/text_encoder.pt --output text_encoder.pth

Official layout (official SAT checkpoints): ``{'step', 'model_state_dict', 'optimizer_state_dict'}``; every key starts
with DDP's ``module.``; every U-Net conv block stores its conv and norm twice (``conv``/``norm`` and
``all_modules.0``/``all_modules.1``); checkpoints trained with deep supervision also hold
``mid_mask_embed_proj.*``. Our :class:`~bundles.networks.sat.sat.SAT` uses the official names minus the
prefix and the aliases, so the mapping is by rule; shapes are checked strictly against a network of the
requested variant built on the meta device (no memory, no compute). The text encoder's conversion is
:mod:`bundles.sat.convert_text_encoder`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any, Literal

import torch

from bundles.checkpoints.conversion import Conversion, conversion_summary
from bundles.checkpoints.converter import print_summary, run_converter, save_converted
from bundles.checkpoints.loading import DDP_PREFIX, check_state_dict, read_official_state_dict, read_state_dict
from bundles.checkpoints.release import write_release_record
from bundles.errors import CheckpointError
from bundles.networks.sat.sat import SAT
from bundles.networks.sat.sat import VARIANTS as SAT_VARIANTS
from bundles.sat.convert_text_encoder import convert_official_text_encoder, export_official_text_encoder

__all__ = [
    "build_meta_sat",
    "convert_official_sat",
    "convert_official_sat_detailed",
    "export_official_sat",
    "segmentation",
    "export",
    "text_encoder",
    "text_encoder_export",
    "release",
    "main",
]

Variant = Literal["nano", "pro"]
VARIANTS = tuple(SAT_VARIANTS)
#: ``all_modules.{i}`` alias -> twin attribute (nnU-Net ConvDropoutNormReLU: Sequential(conv, norm, nonlin)).
ALIAS_TWINS = {"0": "conv", "1": "norm"}
_ALIAS = re.compile(r"^(?P<block>.*\.convs\.\d+)\.all_modules\.(?P<index>\d+)\.(?P<param>weight|bias)$")
_TWIN = re.compile(r"^(?P<block>.*\.convs\.\d+)\.(?P<name>conv|norm)\.(?P<param>weight|bias)$")
DEEP_SUPERVISION_PREFIX = "mid_mask_embed_proj."
ALIAS_REASON = "nnU-Net all_modules alias, checked equal to its conv/norm twin"
DEEP_SUPERVISION_REASON = "deep-supervision head, unused at inference (deep_supervision=False)"
#: Key families of SAT's other checkpoint (the text encoder), to name it when it is passed here.
TEXT_ENCODER_MARKERS = ("text_tower.", "modality_embed.", "model.embeddings.", "biolord.")


def build_meta_sat(variant: Variant, deep_supervision: bool) -> SAT:
    """A SAT network of ``variant`` on the meta device (shapes only), for strict key/shape checks."""
    if variant not in VARIANTS:
        raise CheckpointError(f"unknown SAT variant {variant!r}; choose one of {VARIANTS}")
    with torch.device("meta"):
        return SAT.build(variant, (32, 32, 32), deep_supervision=deep_supervision)


def _check_fits(state: Mapping[str, torch.Tensor], variant: Variant, deep_supervision: bool, source: str) -> None:
    """Strict key/shape check; on failure, say whether the weights fit the other variant."""
    try:
        check_state_dict(build_meta_sat(variant, deep_supervision).state_dict(), state, source=source)
    except CheckpointError as error:
        other = "pro" if variant == "nano" else "nano"
        try:
            check_state_dict(build_meta_sat(other, deep_supervision).state_dict(), state, source=source)
        except CheckpointError:
            raise error from None
        raise CheckpointError(
            f"{source}: these are SAT-{other.capitalize()} weights, not SAT-{variant.capitalize()}; "
            f"use variant '{other}'. Details: {error}"
        ) from None


def _refuse_text_encoder(state: Mapping[str, torch.Tensor], source: str) -> None:
    if any(k.startswith("backbone.") for k in state):
        return
    markers = sorted(k for k in state if any(m in k for m in TEXT_ENCODER_MARKERS))
    if markers:
        raise CheckpointError(
            f"{source}: this is a SAT text-encoder checkpoint (keys such as {', '.join(markers[:3])}), not the "
            "segmentation model; pass the segmentation checkpoint (e.g. nano.pth / SAT_Pro.pth) here"
        )
    raise CheckpointError(
        f"{source}: not a SAT segmentation checkpoint: no 'backbone.*' keys (found {', '.join(sorted(state)[:5])})"
    )


def _drop_aliases(state: dict[str, torch.Tensor], conversion: Conversion, source: str) -> None:
    """Remove ``all_modules.*`` aliases from ``state`` after checking each equals its twin."""
    for key in [k for k in state if ".all_modules." in k]:
        match = _ALIAS.match(key)
        if match is None or match["index"] not in ALIAS_TWINS:
            raise CheckpointError(f"{source}: unexpected alias key {key!r} (only all_modules.0/1 are known)")
        twin = f"{match['block']}.{ALIAS_TWINS[match['index']]}.{match['param']}"
        if twin not in state:
            raise CheckpointError(f"{source}: alias {key!r} has no twin {twin!r}")
        a, b = state[key], state[twin]
        if a.shape != b.shape or not torch.equal(a, b):
            raise CheckpointError(
                f"{source}: alias {key!r} differs from its twin {twin!r}; the file is corrupt or was edited"
            )
        conversion.dropped[DDP_PREFIX + key] = ALIAS_REASON
        del state[key]


def convert_official_sat_detailed(
    state_or_path: Mapping[str, torch.Tensor] | str | PathLike,
    variant: Variant,
    *,
    deep_supervision: bool = True,
) -> Conversion:
    """Like :func:`convert_official_sat`, also reporting the keys used and dropped (with reasons)."""
    state, source = read_official_state_dict(state_or_path, f"SAT-{variant}")
    _refuse_text_encoder(state, source)
    conversion = Conversion(state={})
    _drop_aliases(state, conversion, source)
    if not deep_supervision:
        for key in [k for k in state if k.startswith(DEEP_SUPERVISION_PREFIX)]:
            conversion.dropped[DDP_PREFIX + key] = DEEP_SUPERVISION_REASON
            del state[key]
    _check_fits(state, variant, deep_supervision, source)
    order = build_meta_sat(variant, deep_supervision).state_dict().keys()
    conversion.state = {k: state[k] for k in order}
    conversion.used = [DDP_PREFIX + k for k in order]
    return conversion


def convert_official_sat(
    state_or_path: Mapping[str, torch.Tensor] | str | PathLike,
    variant: Variant,
    *,
    deep_supervision: bool = True,
) -> dict[str, torch.Tensor]:
    """Official SAT segmentation checkpoint -> state dict for ``SAT.nano``/``SAT.pro``.

    Args:
        state_or_path: a checkpoint file, the official ``{'model_state_dict': ...}`` container, or the state
            dict itself (with or without the ``module.`` prefix).
        variant: "nano" or "pro".
        deep_supervision: keep ``mid_mask_embed_proj.*`` (for a network built with deep supervision); with
            False they are dropped for an inference build.

    Returns:
        our state dict (same tensors, no copies), in the network's key order.

    Raises:
        CheckpointError: unreadable file, a text-encoder checkpoint, an ``all_modules`` alias that differs
            from its twin, or keys/shapes that do not fit the variant (the keys are named; weights of the
            other variant are recognised as such).
    """
    return convert_official_sat_detailed(state_or_path, variant, deep_supervision=deep_supervision).state


def export_official_sat(our_state: Mapping[str, torch.Tensor], variant: Variant) -> dict[str, dict[str, torch.Tensor]]:
    """Our SAT state dict -> the official layout ``{'model_state_dict': {'module.<key>': tensor}}``.

    The ``all_modules.0/1`` aliases are re-created (sharing the tensors of their twins, as in the original
    files) right after each block's ``norm.bias``, as the official trainer saves them. Deep-supervision
    heads are exported when present.

    Raises:
        CheckpointError: ``our_state`` does not fit the variant (keys named).
    """
    deep_supervision = any(k.startswith(DEEP_SUPERVISION_PREFIX) for k in our_state)
    _check_fits(our_state, variant, deep_supervision, f"SAT-{variant} state dict to export")
    twin_index = {name: index for index, name in ALIAS_TWINS.items()}
    official: dict[str, torch.Tensor] = {}
    for key, value in our_state.items():
        official[DDP_PREFIX + key] = value
        match = _TWIN.match(key)
        if match and match["name"] == "norm" and match["param"] == "bias":
            block = match["block"]
            for name in ("conv", "norm"):
                for param in ("weight", "bias"):
                    alias = f"{DDP_PREFIX}{block}.all_modules.{twin_index[name]}.{param}"
                    official[alias] = our_state[f"{block}.{name}.{param}"]
    return {"model_state_dict": official}


def segmentation(checkpoint: str, variant: Variant = "nano", output: str = "models/model.pt", deep_supervision: bool = True) -> dict[str, Any]:
    """Official SAT segmentation checkpoint (nano.pth / SAT_Pro.pth) -> our state dict file.

    Prints the keys used and dropped (with reasons), the number of values and the sha256 of source and output.

    Args:
        checkpoint: the official file ({'model_state_dict': {'module.*': ...}, ...}).
        variant: "nano" (bundle sat_nano) or "pro" (bundle sat_pro); the weights are checked strictly against
            this network, and weights of the other variant are named as such.
        output: where to write our state dict (a plain {key: tensor} dict, torch.save), e.g.
            sat_nano/models/model.pt.
        deep_supervision: keep the mid_mask_embed_proj.* heads (for training / a network built with
            deep_supervision=True); False drops them for an inference-only network.
    """
    conversion = convert_official_sat_detailed(checkpoint, variant, deep_supervision=deep_supervision)
    facts = {"variant": variant, **conversion_summary(conversion), "deep_supervision_heads": deep_supervision}
    return save_converted(conversion.state, output, facts, source=checkpoint)


def export(checkpoint: str, variant: Variant = "nano", output: str = "official.pth") -> dict[str, Any]:
    """Our SAT state dict file -> the official layout ({'model_state_dict': {'module.*', all_modules aliases}}).

    Args:
        checkpoint: a file written by ``segmentation`` (or any state dict of SAT.nano / SAT.pro).
        variant: "nano" or "pro".
        output: where to write the official-format file.
    """
    official = export_official_sat(read_state_dict(checkpoint), variant)
    return save_converted(official, output, {"variant": variant, "keys": len(official["model_state_dict"])}, source=checkpoint)


def text_encoder(
    checkpoint: str, kind: str = "ours", output: str = "models/text_encoder.pt", truncate_modality_embed: bool = False
) -> dict[str, Any]:
    """Official SAT text encoder (text_encoder.pth, or a SAT-Pretrain file) -> our state dict file.

    Args:
        checkpoint: the official file ({'model_state_dict': {'module.*': ...}, ...}); read without running its pickles.
        kind: "ours" (= knowledge, the released encoder), "medcpt" or "basebert".
        output: where to write our state dict, e.g. sat_nano/models/text_encoder.pt.
        truncate_modality_embed: accept a 5-row modality embedding (SAT-Pretrain cvpr25) by dropping row 4
            (microscopy).
    """
    state = convert_official_text_encoder(checkpoint, kind, truncate_modality_embed=truncate_modality_embed)
    facts = {"kind": kind, "keys": len(state), "values": sum(t.numel() for t in state.values())}
    return save_converted(state, output, facts, source=checkpoint)


def text_encoder_export(checkpoint: str, kind: str = "ours", output: str = "text_encoder.pth") -> dict[str, Any]:
    """Our text-encoder state dict file -> the official layout ({'step': 0, 'model_state_dict': {'module.*'}}).

    Args:
        checkpoint: a file written by ``text_encoder`` (or by the text pretraining).
        kind: "ours" (= knowledge), "medcpt" or "basebert"; the weights are checked against that encoder.
        output: where to write the official-format file.
    """
    official = export_official_text_encoder(read_state_dict(checkpoint), kind)
    return save_converted({"step": 0, "model_state_dict": official}, output, {"kind": kind, "keys": len(official)}, source=checkpoint)


def release(models_dir: str, segmentation_file: str, text_encoder_file: str, release: str) -> dict[str, Any]:
    """Record that the converted pair in ``models_dir`` belongs together (``models_dir/release.json``); the
    bundles refuse a segmentation checkpoint with another release's text encoder.

    Args:
        models_dir: the bundle's weights folder (e.g. sat_nano/models).
        segmentation_file: the converted segmentation file, inside models_dir (e.g. model.pt).
        text_encoder_file: the converted text encoder, inside models_dir (e.g. text_encoder.pt).
        release: where both come from, e.g. "SAT-Nano (zzh99/SAT)".
    """
    path = write_release_record(models_dir, {"segmentation": segmentation_file, "text_encoder": text_encoder_file}, release)
    summary = {"release": release, "record": str(path)}
    print_summary(summary)
    return summary


#: The commands of ``python -m bundles.sat.convert``.
COMMANDS = {"segmentation": segmentation, "export": export, "text_encoder": text_encoder, "text_encoder_export": text_encoder_export,
            "release": release}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bundles.sat.convert COMMAND ...`` on ``argv`` (default the process's arguments); the exit status."""
    return run_converter(COMMANDS, argv, "bundles.sat.convert")


if __name__ == "__main__":
    sys.exit(main())
