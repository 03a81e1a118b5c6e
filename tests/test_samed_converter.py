"""SAMed converter: SAM checkpoint + LoRA file -> a strict state dict with SAMed's outputs; the official LoRA
file round trip is exact; a LoRA on another SAM base, of another rank or variant is refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bundles.checkpoints.loading import load_weights, read_state_dict
from bundles.checkpoints.release import check_release
from bundles.errors import CheckpointError
from bundles.networks.sam import variants
from bundles.networks.sam.checkpoint import file_md5
from bundles.samed.convert import base_record_path, convert_samed, export, main
from tests.test_samed_network import TINY_ENCODER, TINY_SAMED, official_sam, official_samed_forward, tiny_samed, vit_t  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def official_lora_file(tmp_path: Path, rank: int = 2, num_classes: int = 3, seed: int = 3) -> Path:
    """A LoRA file in SAMed's own layout, written without our code: w_a/w_b per block (2k = q, 2k + 1 = v),
    the prompt encoder and mask decoder of an official SAM with num_classes + 1 mask tokens."""
    generator = torch.Generator().manual_seed(seed)
    dim = TINY_ENCODER["embed_dim"]
    lora = {}
    for i in range(2 * TINY_ENCODER["depth"]):
        lora[f"w_a_{i:03d}"] = torch.randn(rank, dim, generator=generator) * 0.3
        lora[f"w_b_{i:03d}"] = torch.randn(dim, rank, generator=generator) * 0.3
    heads = official_sam(TINY_SAMED["img_size"], num_multimask_outputs=num_classes, seed=seed).state_dict()
    lora.update({k: v for k, v in heads.items() if k.startswith(("prompt_encoder.", "mask_decoder."))})
    path = tmp_path / "epoch_159.pth"
    torch.save(lora, path)
    return path


@pytest.fixture
def sam_file(tmp_path, monkeypatch, vit_t):  # noqa: F811
    """A tiny official-style SAM checkpoint, registered as the released file of ``vit_t`` (its md5)."""
    path = tmp_path / "sam_vit_t.pth"
    torch.save(official_sam().state_dict(), path)
    monkeypatch.setitem(variants.OFFICIAL_CHECKPOINT_MD5, vit_t, file_md5(path))
    return path


def _convert(sam_file: Path, lora: Path, **kwargs):
    return convert_samed(sam_file, lora, img_size=TINY_SAMED["img_size"], rank=kwargs.pop("rank", 2), num_classes=kwargs.pop("num_classes", 3),
                         **kwargs)


def _export(model: Path, sam_file: Path, output: Path) -> Path:
    """The ``export`` command at the tiny size; the LoRA file written."""
    return Path(export(str(model), str(sam_file), str(output), img_size=TINY_SAMED["img_size"])["output"])


def _command(sam: Path, lora: Path, output: Path, *flags: str) -> list[str]:
    """Arguments of ``python -m bundles.samed.convert`` for the tiny network."""
    return ["--sam_checkpoint", str(sam), "--lora", str(lora), "--output", str(output), "--img_size", str(TINY_SAMED["img_size"]),
            "--rank", "2", "--num_classes", "3", *flags]


def test_conversion_loads_strictly_and_gives_samed_outputs(tmp_path, sam_file):
    lora_path = official_lora_file(tmp_path)
    result = _convert(sam_file, lora_path)
    assert result.layout.variant == "vit_t" and result.layout.rank == 2 and not result.layout.decoder_lora
    net = tiny_samed()
    net.load_state_dict(result.conversion.state, strict=True)
    lora = torch.load(lora_path)
    encoder = net.image_encoder.blocks[1].attn.qkv
    assert torch.equal(encoder.linear_a_v.weight, lora["w_a_003"]) and torch.equal(encoder.linear_b_q.weight, lora["w_b_002"])
    assert all(any(k.startswith(p) for p in ("SAM ", "LoRA ")) for k in result.conversion.used)
    dropped = {k for k, why in result.conversion.dropped.items() if "multimask heads" in why}
    assert "SAM mask_decoder.mask_tokens.weight" not in dropped  # replaced by the LoRA file's, not dropped as unknown
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.isfinite(net(image)).all()


def test_official_lora_file_round_trip_is_exact(tmp_path, sam_file):
    lora_path = official_lora_file(tmp_path)
    model = tmp_path / "models" / "model.pt"
    model.parent.mkdir()
    torch.save(_convert(sam_file, lora_path).conversion.state, model)
    exported = _export(model, sam_file, tmp_path / "exported.pth")
    original, back = torch.load(lora_path), torch.load(exported)
    assert set(original) == set(back)
    assert all(torch.equal(original[k], back[k]) for k in original)
    record = json.loads(base_record_path(exported).read_text())
    assert record["sam_base"]["md5"] == file_md5(sam_file) and record["sam_base"]["official"] is True
    # the exported file converts again (its record names the base)
    again = _convert(sam_file, exported)
    assert all(torch.equal(again.conversion.state[k], v) for k, v in read_state_dict(model).items())


def test_lora_on_another_sam_base_is_refused(tmp_path, sam_file):
    other = tmp_path / "other_sam.pth"
    torch.save(official_sam(seed=9).state_dict(), other)
    lora_path = official_lora_file(tmp_path)
    with pytest.raises(CheckpointError, match=r"other_sam\.pth: md5 .* is not the released SAM vit_t checkpoint"):
        _convert(other, lora_path)
    # a LoRA exported with its base record: only that base is accepted
    model = tmp_path / "model.pt"
    torch.save(_convert(sam_file, lora_path).conversion.state, model)
    exported = _export(model, sam_file, tmp_path / "mine.pth")
    with pytest.raises(CheckpointError, match=r"mine\.pth was trained on the SAM base with md5"):
        _convert(other, exported)
    with pytest.raises(CheckpointError, match="its image encoder is not"):
        _export(model, other, tmp_path / "wrong.pth")


def test_a_fine_tuned_sam_base_converts_only_with_custom_base_and_is_recorded(tmp_path, sam_file, capsys):
    """A LoRA trained on a SAM the user fine-tuned (not a released file): refused by md5 by default, the error
    naming --custom_base; with it, converted and the base (path, md5) recorded in release.json beside the model."""
    fine_tuned = tmp_path / "my_finetuned_sam.pth"
    torch.save(official_sam(seed=9).state_dict(), fine_tuned)
    lora = official_lora_file(tmp_path)
    model = tmp_path / "models" / "model.pt"
    assert main(_command(fine_tuned, lora, model)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not the released SAM vit_t checkpoint" in err and "--custom_base" in err
    assert not model.exists()

    assert main(_command(fine_tuned, lora, model, "--custom_base")) == 0
    printed = capsys.readouterr().out
    assert f"sam_base_md5: {file_md5(fine_tuned)}" in printed and "sam_base_released: False" in printed
    record = check_release(model.parent)  # the model's sha256 matches the record
    assert record["model"]["file"] == "model.pt" and "not a released file" in record["release"]
    assert record["sources"]["sam_base"] == {"file": str(fine_tuned.resolve()), "md5": file_md5(fine_tuned), "released": False}
    assert record["sources"]["lora"]["file"] == str(lora.resolve())
    expected = _convert(fine_tuned, lora, custom_base=True).conversion.state
    assert all(torch.equal(expected[k], v) for k, v in read_state_dict(model).items())
    # the flag does not override the base recorded beside a LoRA file trained here
    exported = _export(model, fine_tuned, tmp_path / "mine.pth")
    with pytest.raises(CheckpointError, match=r"mine\.pth was trained on the SAM base with md5"):
        _convert(sam_file, exported, custom_base=True)


def test_the_default_conversion_records_the_released_base(tmp_path, sam_file):
    lora = official_lora_file(tmp_path)
    model = tmp_path / "models" / "model.pt"
    assert main(_command(sam_file, lora, model)) == 0
    record = check_release(model.parent)
    assert record["sources"]["sam_base"]["released"] is True and record["release"] == "SAMed LoRA epoch_159.pth on the released SAM vit_t"


def test_wrong_rank_class_count_and_non_lora_files_are_named(tmp_path, sam_file):
    with pytest.raises(CheckpointError, match=r"epoch_159\.pth: LoRA rank 3, but the network is built with rank 2; pass --rank 3"):
        _convert(sam_file, official_lora_file(tmp_path, rank=3))
    with pytest.raises(CheckpointError, match=r"5 classes \(\+ background\), but the network is built for 3"):
        _convert(sam_file, official_lora_file(tmp_path, num_classes=5))
    with pytest.raises(CheckpointError, match="not a SAMed LoRA file: no w_a_XXX"):
        _convert(sam_file, sam_file)
    broken = torch.load(official_lora_file(tmp_path))
    del broken["w_b_005"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="must come as w_a_/w_b_ pairs numbered .*; missing w_b_005"):
        _convert(sam_file, tmp_path / "broken.pth")


def test_samed_s_decoder_lora_is_merged_into_the_decoder(tmp_path, sam_file):
    """SAMed_s: decoder transformer from SAM + B A on its q/v projections -> the plain network's outputs
    equal a decoder whose q/v linears add the LoRA at run time."""
    lora_path = official_lora_file(tmp_path)
    lora = torch.load(lora_path)
    lora = {k: v for k, v in lora.items() if not k.startswith("mask_decoder.transformer.")}
    generator = torch.Generator().manual_seed(4)
    dim, inner = 32, 16
    for group, out_dim in (("sa", dim), ("cti", inner), ("cit", inner)):
        for i in range(4):
            lora[f"{group}_a_{i:03d}"] = torch.randn(2, dim, generator=generator) * 0.3
            lora[f"{group}_b_{i:03d}"] = torch.randn(out_dim, 2, generator=generator) * 0.3
    for slot in "qv":
        lora[f"fati_{slot}a"] = torch.randn(2, dim, generator=generator) * 0.3
        lora[f"fati_{slot}b"] = torch.randn(inner, 2, generator=generator) * 0.3
    torch.save(lora, tmp_path / "samed_s.pth")
    result = _convert(sam_file, tmp_path / "samed_s.pth")
    assert result.layout.decoder_lora
    net = tiny_samed()
    net.load_state_dict(result.conversion.state, strict=True)
    sam_state = torch.load(sam_file)
    key = "mask_decoder.transformer.layers.1.cross_attn_image_to_token.v_proj.weight"
    assert torch.allclose(net.state_dict()[key], sam_state[key] + lora["cit_b_003"] @ lora["cit_a_003"])
    assert torch.equal(net.state_dict()[key.replace("v_proj", "k_proj")], sam_state[key.replace("v_proj", "k_proj")])


def test_command_line_converts_and_refuses_with_one_line(tmp_path):
    """The external check's command: vit_b shapes are too big for a test, so only the refusals run here."""
    sam = tmp_path / "SAM_VIT_B.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1, 64, 64, 768)}, sam)
    done = subprocess.run(
        [sys.executable, "-m", "bundles.samed.convert", "--sam_checkpoint", str(sam), "--lora", str(tmp_path / "missing.pth"), "--output", str(tmp_path / "out.pt")],
        cwd=REPO, capture_output=True, text=True,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "SAM_VIT_B.pth" in done.stderr and "is none of vit_b, vit_l, vit_h" in done.stderr
    assert not (tmp_path / "out.pt").exists()


def test_converted_file_loads_through_load_weights(tmp_path, sam_file):
    model = tmp_path / "model.pt"
    torch.save(_convert(sam_file, official_lora_file(tmp_path)).conversion.state, model)
    net = load_weights(tiny_samed(), model)
    reference = official_sam(64, num_multimask_outputs=3, seed=3)
    assert torch.equal(net.mask_decoder.mask_tokens.weight, reference.mask_decoder.mask_tokens.weight)
    assert official_samed_forward  # the forward parity itself is tested in test_samed_network
