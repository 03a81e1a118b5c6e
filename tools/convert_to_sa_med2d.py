"""Write 3D volumes with label maps as an SA-Med2D dataset folder (what SAM-UNet trains and tests on).

    python -m tools.convert_to_sa_med2d --cases train.jsonl --output_dir data/sa_med2d --split train

``cases``: a case list (``.jsonl``: one ``{"image", "mask", "legend", "modality"}`` per line; ``legend`` maps
label values to names). Every axial slice on the volume's own grid where an object covers more than
``min_fraction`` of the slice becomes ``images/<case>--s<slice>.png`` (8-bit RGB: CT through a soft-tissue
window, other modalities between their 0.5 and 99.5 percentiles) with one ``masks/...--<name>_000.png`` per
object, listed in ``image2label_train.json`` (``--split train``) or ``label2image_test.json`` (``--split test``).
"""

from __future__ import annotations

import fire

from bundles.errors import install_excepthook
from bundles.sam_unet.sa_med2d import MIN_FRACTION, write_sa_med2d


def convert(cases: str, output_dir: str, split: str = "train", min_fraction: float = MIN_FRACTION, modality: str = "ct") -> None:
    """Volumes + label maps -> SA-Med2D layout.

    Args:
        cases: case list file (.jsonl or .json) with image, mask, legend and modality per case.
        output_dir: the dataset folder (created; an existing index of the same split is extended).
        split: "train" or "test".
        min_fraction: objects covering at most this fraction of a slice are left out (default 100 / 256²).
        modality: of cases that give none: "ct" (soft-tissue window) or another (percentile scaling).
    """
    if split not in ("train", "test"):
        raise SystemExit(f"error: --split must be 'train' or 'test', got {split!r}")
    counts = write_sa_med2d(cases, output_dir, split, min_fraction, modality)
    print(f"wrote {counts['images']} images and {counts['masks']} masks to {output_dir} ({split})")


def main() -> None:
    install_excepthook()
    fire.Fire(convert)


if __name__ == "__main__":
    main()
