"""Official SAT checkpoint <-> our state dict: round trips, alias checks, wrong files named by key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from bundles.checkpoints.loading import load_state_dict_strict, read_state_dict
from bundles.errors import CheckpointError
from bundles.networks.sat.sat import SAT
from bundles.sat import convert as convert_sat
from bundles.sat.convert import convert_official_sat, convert_official_sat_detailed, export_official_sat


def _key_shapes(repo_root, variant: str) -> dict[str, list[int]]:
    return json.loads((repo_root / "tests" / "data" / f"sat_{variant}_keys.json").read_text())["keys_deep_supervision_true"]


def _official_checkpoint(repo_root, variant: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random official-format state dict; aliases share their twin's tensor as in the files."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in _key_shapes(repo_root, variant).items():
        twin = key.replace(".all_modules.0.", ".conv.").replace(".all_modules.1.", ".norm.")
        state[key] = state[twin] if twin != key else torch.randn(shape, generator=g)
    return state


def _official_shapes_only(repo_root, variant: str) -> dict[str, torch.Tensor]:
    """Full-size official key layout without memory: zero-stride tensors of the right shapes."""
    return {k: torch.zeros(1).expand(v) for k, v in _key_shapes(repo_root, variant).items()}


@pytest.fixture(scope="module")
def nano_official(repo_root) -> dict[str, torch.Tensor]:
    return _official_checkpoint(repo_root, "nano")


def test_nano_round_trip_exact(nano_official, tmp_path):
    path = tmp_path / "nano.pth"
    torch.save({"step": 3, "model_state_dict": nano_official, "optimizer_state_dict": {}}, path)
    conversion = convert_official_sat_detailed(path, "nano")
    assert len(conversion.used) == 204 and len(conversion.dropped) == 88
    assert set(conversion.used) | set(conversion.dropped) == set(nano_official)
    with torch.device("meta"):
        net = SAT.nano((288, 288, 96), deep_supervision=True)
    net.to_empty(device="cpu")
    load_state_dict_strict(net, conversion.state, source=str(path))
    back = export_official_sat(net.state_dict(), "nano")["model_state_dict"]
    assert list(back) == list(nano_official)
    assert all(back[k].shape == v.shape and torch.equal(back[k], v) for k, v in nano_official.items())


def test_inference_build_drops_deep_supervision_heads(nano_official):
    conversion = convert_official_sat_detailed({"model_state_dict": nano_official}, "nano", deep_supervision=False)
    mid = {k for k in nano_official if ".mid_mask_embed_proj." in k}
    assert len(mid) == 12 and mid <= set(conversion.dropped)
    assert all("deep-supervision" in conversion.dropped[k] for k in mid)
    with torch.device("meta"):
        expected = SAT.nano((32, 32, 32)).state_dict()
    assert list(conversion.state) == list(expected)
    back = export_official_sat(conversion.state, "nano")["model_state_dict"]
    assert set(back) == set(nano_official) - mid


@pytest.mark.parametrize("variant", ["nano", "pro"])
def test_full_key_layout_round_trip(repo_root, variant):
    official = _official_shapes_only(repo_root, variant)
    ours = convert_official_sat(official, variant)
    assert not any(".all_modules." in k or k.startswith("module.") for k in ours)
    back = export_official_sat(ours, variant)["model_state_dict"]
    assert list(back) == list(official) and all(back[k].shape == official[k].shape for k in back)


def test_alias_that_differs_from_its_twin_is_refused(nano_official):
    broken = dict(nano_official)
    key = "module.backbone.decoder.stages.2.convs.1.all_modules.1.weight"
    broken[key] = broken[key] + 1e-3
    with pytest.raises(CheckpointError, match=r"decoder\.stages\.2\.convs\.1\.all_modules\.1\.weight.*differs"):
        convert_official_sat(broken, "nano")


def test_missing_key_is_named(nano_official):
    broken = {k: v for k, v in nano_official.items() if k != "module.transformer_decoder.layers.4.norm1.bias"}
    with pytest.raises(CheckpointError, match=r"missing keys: transformer_decoder\.layers\.4\.norm1\.bias"):
        convert_official_sat(broken, "nano")


def test_pro_weights_given_as_nano_name_keys_and_variant(repo_root):
    with pytest.raises(CheckpointError, match=r"SAT-Pro weights.*variant 'pro'.*convs\.2") as info:
        convert_official_sat(_official_shapes_only(repo_root, "pro"), "nano")
    assert "unexpected keys" in str(info.value) and "shape mismatches" in str(info.value)
    with pytest.raises(CheckpointError, match=r"SAT-Nano weights"):
        convert_official_sat(_official_shapes_only(repo_root, "nano"), "pro")


@pytest.mark.parametrize("encoder", ["ours", "medcpt"])
def test_text_encoder_checkpoint_is_refused(repo_root, encoder):
    data = json.loads((repo_root / "tests" / "data" / "sat_text_encoder_keys.json").read_text())
    shapes = data["text_encoders"][encoder]
    state = {k: torch.zeros(1).expand(s) for k, s in shapes.items()}
    with pytest.raises(CheckpointError, match="text-encoder checkpoint"):
        convert_official_sat({"model_state_dict": state}, "nano")


def test_convert_tool_writes_loadable_file_and_exports_back(nano_official, tmp_path, capsys):
    source, ours, official = tmp_path / "nano.pth", tmp_path / "models" / "model.pt", tmp_path / "official.pth"
    torch.save({"model_state_dict": nano_official}, source)
    summary = convert_sat.segmentation(str(source), "nano", str(ours), deep_supervision=False)
    printed = capsys.readouterr().out
    assert "keys_used: 192" in printed and "keys_dropped: 100" in printed and "output_sha256" in printed
    assert summary["values"] == 109_194_624
    state = read_state_dict(ours)
    assert len(state) == 192 and not list(tmp_path.glob("models/.tmp-*"))
    convert_sat.export(str(ours), "nano", str(official))
    back = read_state_dict(official)
    assert len(back) == 280 and all(torch.equal(back[k], nano_official[k]) for k in back)


def test_convert_tool_reports_a_wrong_file_in_one_line(repo_root, tmp_path):
    source = tmp_path / "text_encoder.pth"
    torch.save({"model_state_dict": {"module.modality_embed.weight": torch.zeros(4, 768)}}, source)
    done = subprocess.run(
        [sys.executable, "-m", "bundles.sat.convert", "segmentation", f"--checkpoint={source}", "--variant=nano",
         f"--output={tmp_path / 'model.pt'}"],
        cwd=repo_root, capture_output=True, text=True,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: CheckpointError") and "text-encoder checkpoint" in done.stderr
    assert not (tmp_path / "model.pt").exists()
