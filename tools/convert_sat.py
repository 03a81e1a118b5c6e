"""Convert official SAT checkpoints to this project's state dicts (and back).

    python -m tools.convert_sat segmentation --checkpoint nano.pth --variant nano --output models/model.pt
    python -m tools.convert_sat export --checkpoint models/model.pt --variant nano --output official.pth
    python -m tools.convert_sat text_encoder --checkpoint text_encoder.pth --kind ours --output models/text_encoder.pt
    python -m tools.convert_sat release models model.pt text_encoder.pt --release "SAT-Nano (HF zzh99/SAT)"

Outputs are written atomically (temporary file + os.replace). Errors (wrong file, wrong variant, corrupt
aliases) are reported as one line naming the keys.
"""

from __future__ import annotations

from pathlib import Path

import fire

from bundles.checkpoints.conversion import conversion_summary
from bundles.checkpoints.loading import read_state_dict
from bundles.checkpoints.release import file_sha256, write_release_record
from bundles.errors import install_excepthook
from bundles.io.atomic import atomic_torch_save
from bundles.sat.convert import convert_official_sat_detailed, export_official_sat
from bundles.sat.convert_text_encoder import convert_official_text_encoder, export_official_text_encoder


def _save(obj: object, output: str) -> Path:
    return atomic_torch_save(obj, output)


def segmentation(checkpoint: str, variant: str = "nano", output: str = "models/model.pt", deep_supervision: bool = True) -> dict:
    """Official SAT segmentation checkpoint (nano.pth / SAT_Pro.pth) -> our state dict file.

    Args:
        checkpoint: the official file ({'model_state_dict': {'module.*': ...}, ...}).
        variant: "nano" or "pro"; the weights are checked strictly against this network.
        output: where to write our state dict (torch.save of a plain {key: tensor} dict).
        deep_supervision: keep the mid_mask_embed_proj.* heads (for training / a network built with
            deep_supervision=True); False drops them for an inference-only network.

    Prints keys used, keys dropped with reasons, the parameter count and sha256 of source and output.
    """
    conversion = convert_official_sat_detailed(checkpoint, variant, deep_supervision=deep_supervision)
    path = _save(conversion.state, output)
    summary = {"variant": variant, **conversion_summary(conversion, checkpoint, path), "deep_supervision_heads": deep_supervision}
    for name, value in summary.items():
        print(f"{name}: {value}")
    return summary


def export(checkpoint: str, variant: str = "nano", output: str = "official.pth") -> dict:
    """Our SAT state dict file -> the official layout ({'model_state_dict': {'module.*', all_modules aliases}}).

    Args:
        checkpoint: a file written by ``segmentation`` (or any state dict of SAT.nano/SAT.pro).
        variant: "nano" or "pro".
        output: where to write the official-format file.
    """
    official = export_official_sat(read_state_dict(checkpoint), variant)
    path = _save(official, output)
    summary = {
        "variant": variant,
        "source": str(checkpoint),
        "output": str(path),
        "output_sha256": file_sha256(path),
        "keys": len(official["model_state_dict"]),
    }
    for name, value in summary.items():
        print(f"{name}: {value}")
    return summary


def text_encoder(
    checkpoint: str, kind: str = "ours", output: str = "models/text_encoder.pt", truncate_modality_embed: bool = False
) -> dict:
    """Official SAT text encoder (text_encoder.pth, or a SAT-Pretrain file) -> our state dict file.

    Args:
        checkpoint: the official file ({'model_state_dict': {'module.*': ...}, ...}); read with pickle allowed.
        kind: "ours" (= knowledge, the released encoder), "medcpt" or "basebert".
        output: where to write our state dict.
        truncate_modality_embed: accept a 5-row modality embedding (SAT-Pretrain cvpr25) by dropping row 4.
    """
    state = convert_official_text_encoder(checkpoint, kind, truncate_modality_embed=truncate_modality_embed)
    path = _save(state, output)
    summary = {
        "kind": kind,
        "source": str(checkpoint),
        "source_sha256": file_sha256(checkpoint),
        "output": str(path),
        "output_sha256": file_sha256(path),
        "keys": len(state),
        "parameters": sum(t.numel() for t in state.values()),
    }
    for name, value in summary.items():
        print(f"{name}: {value}")
    return summary


def text_encoder_export(checkpoint: str, kind: str = "ours", output: str = "text_encoder.pth") -> dict:
    """Our text-encoder state dict -> the official layout ({'step': 0, 'model_state_dict': {'module.*'}})."""
    official = export_official_text_encoder(read_state_dict(checkpoint), kind)
    path = _save({"step": 0, "model_state_dict": official}, output)
    summary = {"kind": kind, "source": str(checkpoint), "output": str(path), "output_sha256": file_sha256(path), "keys": len(official)}
    for name, value in summary.items():
        print(f"{name}: {value}")
    return summary


def release(models_dir: str, segmentation_file: str, text_encoder_file: str, release: str) -> str:
    """Record that the converted pair in ``models_dir`` belongs together (``models_dir/release.json``); the
    bundles refuse a segmentation checkpoint with another release's text encoder."""
    path = write_release_record(models_dir, {"segmentation": segmentation_file, "text_encoder": text_encoder_file}, release)
    print(f"wrote {path}")
    return str(path)


def main() -> None:
    install_excepthook()
    fire.Fire(
        {
            "segmentation": segmentation,
            "export": export,
            "text_encoder": text_encoder,
            "text_encoder_export": text_encoder_export,
            "release": release,
        }
    )


if __name__ == "__main__":
    main()
