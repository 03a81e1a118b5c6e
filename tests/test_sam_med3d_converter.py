"""SAM-Med3D converter: official layouts in, a strict state dict out; wrong files refused naming the keys;
training dumps read without running their pickles."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bundles.checkpoints.loading import load_weights, read_state_dict
from bundles.errors import CheckpointError
from bundles.networks.sam_med3d import SAMMed3D
from bundles.sam_med3d.convert import convert_official_sam_med3d
from tests.test_sam_med3d_network import TINY, _tiny

REPO = Path(__file__).resolve().parents[1]


class _Trap:
    """Unpickling this would delete ``path``: a training dump must never run its pickles."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.remove, (self.path,))


def _official_dump(tmp_path: Path, state: dict[str, torch.Tensor], **extra) -> Path:
    path = tmp_path / "sam_med3d_official.pth"
    torch.save({"epoch": 7, "model_state_dict": state, "args": argparse.Namespace(lr=8e-4), **extra}, path)
    return path


def test_training_dump_converts_loads_strictly_and_gives_the_same_outputs(tmp_path):
    net = _tiny(3)
    canary = tmp_path / "canary"
    canary.write_text("still here")
    state = {**net.state_dict(), "pixel_mean": torch.zeros(3, 1, 1, 1), "prompt_encoder.point_embeddings.2.weight": torch.zeros(1, 48)}
    path = _official_dump(tmp_path, state, trap=_Trap(str(canary)))
    with pytest.raises(CheckpointError, match="pickles non-tensor objects and was refused"):
        read_state_dict(path)  # plain reading refuses; the converter reads it safely
    conversion = convert_official_sam_med3d(path, **TINY)
    assert canary.exists()
    assert set(conversion.dropped) == {"pixel_mean", "prompt_encoder.point_embeddings.2.weight"}
    assert all(conversion.dropped.values())
    assert len(conversion.used) == len(net.state_dict()) and set(conversion.used).isdisjoint(conversion.dropped)
    out = tmp_path / "model.pt"
    torch.save(conversion.state, out)
    fresh = load_weights(SAMMed3D.vit_b_ori(**TINY).eval(), out)
    image, points, labels = torch.randn(1, 1, 32, 32, 32), torch.tensor([[[5.0, 9.0, 30.0]]]), torch.tensor([[1]])
    with torch.no_grad():
        assert torch.equal(fresh(image, points, labels), net(image, points, labels))


def test_ddp_prefix_is_stripped():
    net = _tiny()
    conversion = convert_official_sam_med3d({"model_state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, **TINY)
    assert list(conversion.state) == list(net.state_dict())


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("mask_decoder.iou_token.weight"), "1 missing keys: mask_decoder.iou_token.weight"),
        (lambda s: s.update({"image_encoder.extra": torch.zeros(1)}), "1 unexpected keys: image_encoder.extra"),
        (lambda s: s.update({"image_encoder.pos_embed": torch.zeros(1, 5, 5, 5, 48)}), r"image_encoder.pos_embed: checkpoint \(1, 5, 5, 5, 48\)"),
    ],
)
def test_mismatched_files_are_refused_naming_the_keys(edit, message):
    state = dict(_tiny().state_dict())
    edit(state)
    with pytest.raises(CheckpointError, match=message):
        convert_official_sam_med3d(state, **TINY)


def test_a_checkpoint_of_another_model_is_named_as_such():
    with pytest.raises(CheckpointError, match="not a SAM-Med3D checkpoint"):
        convert_official_sam_med3d({"backbone.encoder.weight": torch.zeros(2)})


def test_command_line_writes_a_strict_file_and_refuses_a_bad_one_in_one_line(tmp_path):
    """``python -m bundles.sam_med3d.convert --checkpoint IN --output OUT`` (the full-size network)."""
    with torch.device("meta"):
        shapes = SAMMed3D.vit_b_ori().state_dict()
    good = {k: torch.zeros(v.shape) for k, v in shapes.items()}
    src = _official_dump(tmp_path, good)
    out = tmp_path / "out" / "model.pt"
    run = subprocess.run([sys.executable, "-m", "bundles.sam_med3d.convert", "--checkpoint", str(src), "--output", str(out)],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "keys_used: 324" in run.stdout and out.is_file()
    assert set(read_state_dict(out)) == set(shapes)
    good.pop("image_encoder.neck.0.weight")
    bad = _official_dump(tmp_path, good)
    run = subprocess.run([sys.executable, "-m", "bundles.sam_med3d.convert", "--checkpoint", str(bad), "--output", str(tmp_path / "bad.pt")],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 1 and not (tmp_path / "bad.pt").exists()
    assert run.stderr.strip().count("\n") == 0 and "image_encoder.neck.0.weight" in run.stderr
