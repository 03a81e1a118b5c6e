"""A SAM-UNet to start training from: SAM's weights where SAM-UNet reuses them, fresh layers elsewhere; the
``python -m bundles.sam_unet.convert`` command (:func:`main`) that prepares the bundle's weights.

    python -m bundles.sam_unet.convert --sam_checkpoint sam_vit_b_01ec64.pth --output sam_unet/models/model.pt

No SAM-UNet weights were ever released; its training starts from the official SAM ViT-B checkpoint (image
encoder resized from 1024 to 256 input as SAMed does, prompt encoder, the mask decoder's two-way transformer
and upscaling) and, optionally, ImageNet weights of the torchvision ResNet (a file the user provides:
nothing is downloaded). SAM's IoU token, mask tokens, hypernetworks and IoU head have no place in SAM-UNet's
decoder and are dropped; the adapters, bridges, medical token and its heads start from their initialisation.
Then train with ``configs/train.json`` (which loads ``models/model.pt``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from os import PathLike
from typing import Any

import torch

from bundles.checkpoints.conversion import Conversion, conversion_summary
from bundles.checkpoints.converter import run_converter, save_converted
from bundles.checkpoints.loading import check_state_dict, read_state_dict
from bundles.errors import CheckpointError
from bundles.networks.sam.checkpoint import fit_to_input, read_sam_checkpoint
from bundles.networks.sam_unet import SAMUNet

__all__ = ["init_from_sam", "SAM_PARTS", "init", "main"]

#: Key prefixes SAM-UNet takes from SAM as they are (after the encoder's resize).
SAM_PARTS = ("image_encoder.", "prompt_encoder.", "mask_decoder.transformer.", "mask_decoder.output_upscaling.")
_RESNET = {"conv1.": "resnet.stage0.0.", "bn1.": "resnet.stage0.1.", **{f"layer{i}.": f"resnet.stage{i}." for i in range(1, 5)}}


def init_from_sam(
    sam_checkpoint: str | PathLike, variant: str = "res34", resnet_checkpoint: str | PathLike | None = None, seed: int = 0, **overrides
) -> Conversion:
    """SAM file (+ torchvision ResNet file) -> a :class:`Conversion` loading strictly into ``SAMUNet.build(variant)``.

    Raises:
        CheckpointError: not a SAM ViT-B file, a ResNet file that does not fit the branch (keys named).
    """
    sam, sam_variant = read_sam_checkpoint(sam_checkpoint)
    torch.manual_seed(seed)
    network = SAMUNet.build(variant, **overrides)
    if sam_variant != "vit_b" and "embed_dim" not in overrides:
        raise CheckpointError(f"{sam_checkpoint}: SAM-UNet is built on SAM ViT-B; this is SAM {sam_variant}")
    state = network.state_dict()
    conversion = Conversion(state={})
    resized = fit_to_input(sam, sam_variant, network.img_size)
    taken = {k: v for k, v in resized.items() if k.startswith(SAM_PARTS)}
    check_state_dict({k: state[k] for k in state if k.startswith(SAM_PARTS)}, taken, source=str(sam_checkpoint))
    state.update(taken)
    conversion.used += [f"SAM {k}" for k in taken]
    conversion.dropped.update({f"SAM {k}": "no place in SAM-UNet's decoder (one medical token, no IoU head)" for k in sam if k not in taken})
    if resnet_checkpoint is not None:
        resnet = read_state_dict(resnet_checkpoint)
        mapped = {}
        for key, value in resnet.items():
            prefix = next((p for p in _RESNET if key.startswith(p)), None)
            if prefix is None:
                conversion.dropped[f"ResNet {key}"] = "the classification head (fc) is not part of the branch"
                continue
            mapped[_RESNET[prefix] + key[len(prefix) :]] = value
        check_state_dict({k: state[k] for k in state if k.startswith("resnet.")}, mapped, source=str(resnet_checkpoint))
        state.update(mapped)
        conversion.used += [f"ResNet {k}" for k in resnet if not k.startswith("fc.")]
    conversion.state = {k: v.detach().to(torch.float32).contiguous() if v.is_floating_point() else v.clone() for k, v in state.items()}
    return conversion


def init(sam_checkpoint: str, output: str = "sam_unet/models/model.pt", variant: str = "res34", resnet_checkpoint: str | None = None,
         seed: int = 0) -> dict[str, Any]:
    """SAM ViT-B checkpoint (+ torchvision ResNet weights) -> an initial SAM-UNet state dict file (no SAM-UNet
    weights were released: this is where its training starts). Prints the keys used and dropped.

    Args:
        sam_checkpoint: the official SAM ViT-B file (sam_vit_b_01ec64.pth).
        output: where to write the state dict (default the bundle's weights, relative to where you run it).
        variant: "res34" (ResNet-34 branch, the original default) or "res50"; give training and inference the same.
        resnet_checkpoint: optional torchvision ImageNet weights of that ResNet (e.g. resnet34-b627a593.pth);
            without it the branch starts from its seeded initialisation.
        seed: seed of the layers that start from their initialisation.
    """
    conversion = init_from_sam(sam_checkpoint, variant, resnet_checkpoint, seed)
    return save_converted(conversion.state, output, {"variant": variant, **conversion_summary(conversion)}, source=sam_checkpoint)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bundles.sam_unet.convert --sam_checkpoint ...`` on ``argv`` (default the process's arguments); the exit status."""
    return run_converter(init, argv, "bundles.sam_unet.convert")


if __name__ == "__main__":
    sys.exit(main())
