"""Convert an official SAM-Med3D checkpoint (SAM-Med3D, -turbo, -organ, -brain) to our state dict; the
``python -m bundles.sam_med3d.convert`` command (:func:`main`).

    python -m bundles.sam_med3d.convert --checkpoint sam_med3d_turbo.pth --output sam_med3d/models/model.pt

Official layout (SAM-Med3D ``train.py``): ``{'epoch', 'model_state_dict', 'optimizer_state_dict', ...,
'args': argparse.Namespace}``, or a slim ``{'model_state_dict': ...}`` (the Hugging Face turbo file); 324
weight keys without DDP's ``module.`` prefix. Our :class:`~bundles.networks.sam_med3d.SAMMed3D` keeps
the official names, so every official key is used as it is, except the ones dropped with a reason in
:data:`DROPPED`. Training dumps are read without running their pickles
(:mod:`bundles.checkpoints.safe_unpickle`); shapes are checked strictly against the network built on
the meta device.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

import torch

from bundles.checkpoints.conversion import Conversion, conversion_summary
from bundles.checkpoints.converter import run_converter, save_converted
from bundles.checkpoints.loading import check_state_dict, read_official_state_dict
from bundles.errors import CheckpointError
from bundles.networks.sam_med3d import SAMMed3D

__all__ = ["DROPPED", "build_meta_sam_med3d", "convert_official_sam_med3d", "convert", "main"]

#: Official keys we do not use, and why.
DROPPED = {
    "prompt_encoder.point_embeddings.2.weight": "box-corner embedding of the CVPR25_3DFM box-prompt branch; this bundle takes clicks, and box prompts are unusable on the official main branch",
    "prompt_encoder.point_embeddings.3.weight": "box-corner embedding of the CVPR25_3DFM box-prompt branch; this bundle takes clicks, and box prompts are unusable on the official main branch",
    "pixel_mean": "RGB normalisation buffer left over from 2D SAM (non-persistent officially, used by no official script)",
    "pixel_std": "RGB normalisation buffer left over from 2D SAM (non-persistent officially, used by no official script)",
}


def build_meta_sam_med3d(variant: str = "vit_b_ori", **overrides: Any) -> SAMMed3D:
    """The network of ``variant`` on the meta device (shapes only, no memory), for strict checks."""
    with torch.device("meta"):
        return SAMMed3D.build(variant, **overrides)


def convert_official_sam_med3d(
    state_or_path: Mapping[str, torch.Tensor] | str | PathLike, variant: str = "vit_b_ori", **overrides: Any
) -> Conversion:
    """Official checkpoint (file or state dict) -> :class:`Conversion` that loads strictly into
    ``SAMMed3D.build(variant, **overrides)``.

    Raises:
        CheckpointError: unreadable file, no state dict, not SAM-Med3D weights (keys named), or keys and
            shapes that do not fit the network (missing, unexpected and mis-shaped keys listed).
    """
    state, source = read_official_state_dict(state_or_path, "SAM-Med3D")
    if not any(k.startswith("image_encoder.") for k in state) or not any(k.startswith("prompt_encoder.") for k in state):
        raise CheckpointError(
            f"{source}: not a SAM-Med3D checkpoint: no 'image_encoder.*' / 'prompt_encoder.*' keys "
            f"(found {', '.join(sorted(state)[:5])})"
        )
    conversion = Conversion(state={})
    for key in [k for k in state if k in DROPPED]:
        conversion.dropped[key] = DROPPED[key]
        del state[key]
    expected = build_meta_sam_med3d(variant, **overrides).state_dict()
    check_state_dict(expected, state, source=source)
    conversion.state = {k: state[k].detach().to(torch.float32).contiguous() for k in expected}
    conversion.used = list(expected)
    return conversion


def convert(checkpoint: str, output: str = "sam_med3d/models/model.pt", variant: str = "vit_b_ori") -> dict[str, Any]:
    """Official SAM-Med3D checkpoint -> our state dict file.

    Reads ``model_state_dict`` (or a plain state dict; training dumps with pickled extras are read without
    running their pickles), checks every key and shape strictly, writes the file atomically and prints the keys
    used and dropped (with reasons), the number of values and the sha256 of source and output.

    Args:
        checkpoint: the official file (sam_med3d_turbo.pth, sam_med3d.pth, ...).
        output: where to write our state dict (a plain {key: tensor} dict, torch.save; default the bundle's
            weights, relative to where you run it).
        variant: the architecture the weights must fit ("vit_b_ori", the only released one).
    """
    conversion = convert_official_sam_med3d(checkpoint, variant)
    return save_converted(conversion.state, output, {"variant": variant, **conversion_summary(conversion)}, source=checkpoint)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bundles.sam_med3d.convert --checkpoint ...`` on ``argv`` (default the process's arguments); the exit status."""
    return run_converter(convert, argv, "bundles.sam_med3d.convert")


if __name__ == "__main__":
    sys.exit(main())
