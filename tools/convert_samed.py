"""Build a SAMed model file from the official SAM checkpoint and a SAMed LoRA file.

    python -m tools.convert_samed --sam_checkpoint sam_vit_b_01ec64.pth --lora epoch_159.pth --output samed_lora/models/model.pt

The SAM file must be the base the LoRA file was trained on: the released SAM checkpoint of the LoRA's
variant (checked by md5), or the one recorded beside a LoRA file by ``python -m tools.export_samed``.
SAM's image encoder is resized from 1024 to ``img_size`` as SAMed does; the LoRA factors, prompt encoder and
mask decoder come from the LoRA file (SAMed_s: its decoder LoRA merged into the decoder). Every key and
shape is checked strictly against the network; the output is written atomically. Prints the variant (set
``network_def`` to it for SAMed_h), the keys used and dropped and the checksums.
"""

from __future__ import annotations

import fire

from bundles.checkpoints.conversion import conversion_summary
from bundles.errors import install_excepthook
from bundles.io.atomic import atomic_torch_save
from bundles.samed.convert import convert_samed


def convert(
    sam_checkpoint: str, lora: str, output: str = "samed_lora/models/model.pt", img_size: int = 512, rank: int = 4, num_classes: int = 8
) -> None:
    """Official SAM checkpoint + SAMed / SAMed_s / SAMed_h LoRA file -> our SAMed state dict file.

    Args:
        sam_checkpoint: the SAM file the LoRA was trained on (sam_vit_b_01ec64.pth; SAMed_h: sam_vit_h_4b8939.pth).
        lora: the SAMed LoRA file (epoch_159.pth of SAMed, SAMed_s or SAMed_h, or one written by tools.export_samed).
        output: where to write our state dict (a plain {key: tensor} dict, torch.save; default samed_lora/models/model.pt, the bundle's weights, relative to where you run it).
        img_size: the network's input side (512 for every released SAMed).
        rank: the LoRA rank the network is built with (4 in every release); a file of another rank is refused.
        num_classes: foreground classes of the network (8: the Synapse organs); a file with another count is refused.
    """
    result = convert_samed(sam_checkpoint, lora, img_size=img_size, rank=rank, num_classes=num_classes)
    path = atomic_torch_save(result.conversion.state, output)
    summary = {
        "variant": result.layout.variant + (" (SAMed_s: decoder LoRA merged into the decoder)" if result.layout.decoder_lora else ""),
        "sam_base_md5": result.sam_md5,
        **conversion_summary(result.conversion, lora, path),
    }
    for name, value in summary.items():
        print(f"{name}: {value}")


def main() -> None:
    install_excepthook()
    fire.Fire(convert)


if __name__ == "__main__":
    main()
