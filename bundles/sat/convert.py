"""Convert the official SAT segmentation checkpoints (SAT-Nano / SAT-Pro) to our state dict, and back.

Official layout (official SAT checkpoints): ``{'step', 'model_state_dict', 'optimizer_state_dict'}``; every key starts
with DDP's ``module.``; every U-Net conv block stores its conv and norm twice (``conv``/``norm`` and
``all_modules.0``/``all_modules.1``); checkpoints trained with deep supervision also hold
``mid_mask_embed_proj.*``. Our :class:`~bundles.networks.sat.sat.SAT` uses the official names minus the
prefix and the aliases, so the mapping is by rule; shapes are checked strictly against a network of the
requested variant built on the meta device (no memory, no compute).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from typing import Literal

import torch

from bundles.checkpoints.conversion import Conversion
from bundles.checkpoints.loading import check_state_dict, read_state_dict, strip_prefix
from bundles.errors import CheckpointError
from bundles.networks.sat.sat import SAT
from bundles.networks.sat.sat import VARIANTS as SAT_VARIANTS

__all__ = ["build_meta_sat", "convert_official_sat", "convert_official_sat_detailed", "export_official_sat"]

Variant = Literal["nano", "pro"]
VARIANTS = tuple(SAT_VARIANTS)
DDP_PREFIX = "module."
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
    if isinstance(state_or_path, Mapping):
        source = f"SAT-{variant} state dict"
        raw = {str(k): v for k, v in state_or_path.items()}
        if "model_state_dict" in raw and isinstance(raw["model_state_dict"], Mapping):
            raw = dict(raw["model_state_dict"])
    else:
        source = str(state_or_path)
        raw = read_state_dict(state_or_path, allow_pickle=True)
    bad = sorted(k for k, v in raw.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointError(f"{source}: non-tensor entries {bad[:5]}; expected a state dict of tensors")
    state = strip_prefix(raw, DDP_PREFIX)
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
