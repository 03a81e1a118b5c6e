"""Start a SAM-UNet from SAM's weights (there are no released SAM-UNet weights to convert).

    python -m tools.init_sam_unet --sam_checkpoint sam_vit_b_01ec64.pth --output sam_unet/models/model.pt

Takes SAM ViT-B's image encoder (resized from 1024 to 256 input), prompt encoder and the mask decoder's
transformer and upscaling; with ``--resnet_checkpoint`` (a torchvision ``resnet34-*.pth`` you downloaded)
the ResNet branch's ImageNet weights; the other layers start from their seeded initialisation. Then train
with ``configs/train.json`` (which loads ``models/model.pt``). Prints the keys used and dropped.
"""

from __future__ import annotations

import fire

from bundles.checkpoints.conversion import conversion_summary
from bundles.errors import install_excepthook
from bundles.io.atomic import atomic_torch_save
from bundles.sam_unet.convert import init_from_sam


def init(sam_checkpoint: str, output: str = "sam_unet/models/model.pt", variant: str = "res34", resnet_checkpoint: str | None = None,
         seed: int = 0) -> None:
    """SAM ViT-B checkpoint (+ torchvision ResNet weights) -> an initial SAM-UNet state dict.

    Args:
        sam_checkpoint: the official SAM ViT-B file (sam_vit_b_01ec64.pth).
        output: where to write the state dict.
        variant: "res34" (ResNet-34 branch, the original default) or "res50".
        resnet_checkpoint: optional torchvision ImageNet weights of that ResNet (e.g. resnet34-b627a593.pth).
        seed: seed of the layers that start from their initialisation.
    """
    conversion = init_from_sam(sam_checkpoint, variant, resnet_checkpoint, seed)
    path = atomic_torch_save(conversion.state, output)
    for name, value in {"variant": variant, **conversion_summary(conversion, sam_checkpoint, path)}.items():
        print(f"{name}: {value}")


def main() -> None:
    install_excepthook()
    fire.Fire(init)


if __name__ == "__main__":
    main()
