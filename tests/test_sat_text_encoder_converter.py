"""Official SAT text-encoder checkpoints <-> ours: exact round trip, strict errors, release pair record."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import MPNetConfig

from bundles.checkpoints.loading import load_state_dict_strict
from bundles.checkpoints.release import check_release, write_release_record
from bundles.errors import CheckpointError
from bundles.networks.sat.text_encoder import KnowledgeEncoder
from bundles.sat.convert_text_encoder import convert_official_text_encoder, export_official_text_encoder


@pytest.fixture(scope="module")
def official_states(repo_root) -> dict[str, dict[str, torch.Tensor]]:
    """Deterministic random official-format state dicts built from the key list (float16 to keep them light)."""
    tables = json.loads((repo_root / "tests/data/sat_text_encoder_keys.json").read_text())["text_encoders"]
    generator = torch.Generator().manual_seed(0)
    return {
        kind: {k: torch.randn(shape, generator=generator, dtype=torch.float16) for k, shape in tables[kind].items()}
        for kind in ("ours", "medcpt")
    }


@pytest.fixture()
def official_state(official_states):
    """A fresh (shallow) copy per call, so tests may add or remove keys."""
    return lambda kind: dict(official_states[kind])


@pytest.mark.parametrize("official,ours", [("ours", "knowledge"), ("medcpt", "medcpt")])
def test_round_trip_is_exact(official_state, official, ours):
    state = official_state(official)
    converted = convert_official_text_encoder(state, official)
    assert all(not k.startswith("module.") for k in converted)
    assert "modality_embed.weight" in converted
    back = export_official_text_encoder(converted, ours)
    assert list(back) == list(state)
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_converted_file_loads_strictly_into_encoder(tmp_path):
    config = MPNetConfig(vocab_size=30, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=40)
    source = KnowledgeEncoder(config)
    official = {"module." + k: v for k, v in source.state_dict().items()}
    official["module.text_tower.biolord.embeddings.position_ids"] = torch.arange(40)[None]
    path = tmp_path / "text_encoder.pth"
    torch.save({"step": 7, "model_state_dict": official}, path)
    converted = convert_official_text_encoder(path, "ours", config=config)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        convert_official_text_encoder(path, "ours")
    target = KnowledgeEncoder(config)
    load_state_dict_strict(target, converted, source=str(path))
    assert torch.equal(target.projection_layer[2].weight, source.projection_layer[2].weight)


def test_buffers_and_pretrain_keys_dropped(official_state, tmp_path, caplog):
    state = official_state("ours")
    state["module.text_tower.biolord.embeddings.position_ids"] = torch.arange(514)[None]
    state["module.temperature"] = torch.tensor(14.3)
    state["module.atlas_tower.encoder.stem.weight"] = torch.zeros(4, 1, 3, 3, 3)
    path = tmp_path / "multimodal_sat_ds.pth"
    torch.save({"step": 1, "model_state_dict": state, "text_loss": 0.5}, path)
    converted = convert_official_text_encoder(path, "knowledge")
    assert len(converted) == 204
    assert "SAT-Pretrain" in caplog.text and "not the text encoder of a released" in caplog.text


def test_five_row_modality_embed(official_state):
    state = official_state("ours")
    five = torch.randn(5, 768)
    state["module.modality_embed.weight"] = five
    with pytest.raises(CheckpointError, match="5 rows.*truncate_modality_embed=True"):
        convert_official_text_encoder(state, "ours")
    converted = convert_official_text_encoder(state, "ours", truncate_modality_embed=True)
    assert torch.equal(converted["modality_embed.weight"], five[:4])


def test_wrong_files_are_refused(official_state, tmp_path):
    medcpt = official_state("medcpt")
    with pytest.raises(CheckpointError, match="missing keys.*text_tower.biolord"):
        convert_official_text_encoder(medcpt, "ours")
    ours = official_state("ours")
    ours.pop("module.projection_layer.2.bias")
    with pytest.raises(CheckpointError, match="1 missing keys: projection_layer.2.bias"):
        convert_official_text_encoder(ours, "ours")
    ours = official_state("ours")
    ours["module.text_tower.biolord.embeddings.word_embeddings.weight"] = torch.zeros(30522, 768)
    with pytest.raises(CheckpointError, match=r"word_embeddings.weight: checkpoint \(30522, 768\) vs network \(30527, 768\)"):
        convert_official_text_encoder(ours, "ours")
    segmentation = {"module.backbone.encoder.stages.0.weight": torch.zeros(2)}
    with pytest.raises(CheckpointError, match="segmentation checkpoint"):
        convert_official_text_encoder(segmentation, "ours")
    (tmp_path / "broken.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="broken.pth"):
        convert_official_text_encoder(tmp_path / "broken.pth", "ours")
    with pytest.raises(CheckpointError, match="no official checkpoint format"):
        convert_official_text_encoder(medcpt, "sentence")
    with pytest.raises(CheckpointError, match="unexpected keys"):
        export_official_text_encoder({"module." + k: v for k, v in convert_official_text_encoder(medcpt, "medcpt").items()}, "medcpt")


def test_release_pair_record(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_bytes(b"segmentation weights")
    (models / "text_encoder.pt").write_bytes(b"text encoder weights")
    with pytest.raises(CheckpointError, match="no release record"):
        check_release(models)
    record_path = write_release_record(models, {"segmentation": models / "model.pt", "text_encoder": "text_encoder.pt"}, "SAT-Nano test")
    record = check_release(models)
    assert record_path == models / "release.json"
    assert record["release"] == "SAT-Nano test" and record["text_encoder"]["file"] == "text_encoder.pt"
    (models / "text_encoder.pt").write_bytes(b"another release's text encoder")
    with pytest.raises(CheckpointError, match="text_encoder.pt: this text_encoder file is not the one recorded"):
        check_release(models)
    (models / "text_encoder.pt").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        check_release(models)
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="must lie inside"):
        write_release_record(models, {"segmentation": models / "model.pt", "text_encoder": outside}, "x")


def test_release_record_of_any_parts(tmp_path):
    """A release of three parts (e.g. a SAM base, a LoRA file and a decoder): each is checked by name."""
    for name in ("sam_base.pt", "lora.pt", "decoder.pt"):
        (tmp_path / name).write_bytes(name.encode())
    write_release_record(tmp_path, {"base": "sam_base.pt", "lora": "lora.pt", "decoder": "decoder.pt"}, "three parts")
    assert set(check_release(tmp_path)) == {"release", "base", "lora", "decoder", "written"}
    (tmp_path / "lora.pt").write_bytes(b"a LoRA file trained on another base")
    with pytest.raises(CheckpointError, match="lora.pt: this lora file is not the one recorded.*matching lora for its base, decoder"):
        check_release(tmp_path)
    with pytest.raises(CheckpointError, match="parts must be named"):
        write_release_record(tmp_path, {}, "nothing")
