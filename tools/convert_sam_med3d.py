"""Convert an official SAM-Med3D checkpoint to this project's state dict.

    python -m tools.convert_sam_med3d --checkpoint sam_med3d_turbo.pth --output sam_med3d/models/model.pt

Reads ``model_state_dict`` (or a plain state dict; training dumps with pickled extras are read without
running their pickles), checks every key and shape strictly against ``SAMMed3D.vit_b_ori``, and writes a
plain ``{key: tensor}`` file atomically. Prints the keys used and dropped (with reasons), the parameter
count and the sha256 of source and output. A file that does not fit is refused with one line naming keys.
"""

from __future__ import annotations

import fire

from bundles.checkpoints.conversion import conversion_summary
from bundles.errors import install_excepthook
from bundles.io.atomic import atomic_torch_save
from bundles.sam_med3d.convert import convert_official_sam_med3d


def convert(checkpoint: str, output: str = "sam_med3d/models/model.pt", variant: str = "vit_b_ori") -> None:
    """Official SAM-Med3D checkpoint -> our state dict file.

    Args:
        checkpoint: the official file (sam_med3d_turbo.pth, sam_med3d.pth, ...).
        output: where to write our state dict (a plain {key: tensor} dict, torch.save).
        variant: the architecture the weights must fit ("vit_b_ori", the only released one).
    """
    conversion = convert_official_sam_med3d(checkpoint, variant)
    path = atomic_torch_save(conversion.state, output)
    summary = {"variant": variant, **conversion_summary(conversion, checkpoint, path)}
    for name, value in summary.items():
        print(f"{name}: {value}")


def main() -> None:
    install_excepthook()
    fire.Fire(convert)


if __name__ == "__main__":
    main()
