"""Write a SAMed model of ours back as the small official LoRA-only file (w_a_XXX / w_b_XXX + heads).

    python -m tools.export_samed --model samed_lora/models/model.pt --sam_checkpoint sam_vit_b_01ec64.pth --output samed_lora.pth

The file loads in the official SAMed code (``load_lora_parameters``) and in ``tools.convert_samed``; a
record of its SAM base (``<output>.json``: file name, md5) is written beside it, so the converter refuses
it on any other base. The model's encoder must be that SAM checkpoint (checked tensor by tensor).
"""

from __future__ import annotations

import fire

from bundles.checkpoints.release import file_sha256
from bundles.errors import install_excepthook
from bundles.samed.convert import base_record_path, export_lora


def export(model: str, sam_checkpoint: str, output: str, img_size: int = 512) -> None:
    """Our SAMed state dict -> official SAMed LoRA file + its SAM-base record.

    Args:
        model: our SAMed model file (e.g. samed_lora/models/model.pt, converted or fine-tuned).
        sam_checkpoint: the SAM checkpoint the model's encoder was built from.
        output: the LoRA file to write (.pth).
        img_size: the model's input side (512).
    """
    path = export_lora(model, sam_checkpoint, output, img_size)
    print(f"output: {path}\noutput_sha256: {file_sha256(path)}\nsam_base_record: {base_record_path(path)}")


def main() -> None:
    install_excepthook()
    fire.Fire(export)


if __name__ == "__main__":
    main()
