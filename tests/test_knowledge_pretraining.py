"""Knowledge pretraining: pairs from the jsonl, multi-positive InfoNCE, layer opening, training, checkpoint."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

from bundles.checkpoints.loading import load_state_dict_strict, read_state_dict
from bundles.errors import BundleInputError, ConfigurationError
from bundles.networks.sat.text_encoder import KnowledgeEncoder, build_text_encoder
from bundles.sat.knowledge import read_knowledge_pairs
from bundles.sat.knowledge_pretraining import KnowledgePretraining, open_top_layers
from bundles.sat.losses.contrastive import MultiPositiveInfoNCE, match_matrix


@pytest.fixture(scope="module")
def example_file(repo_root):
    return repo_root / "data/knowledge/example_terms.jsonl"


def test_pairs_from_example_file(example_file):
    pairs = read_knowledge_pairs(example_file)
    lines = [json.loads(line) for line in example_file.read_text().splitlines()]
    assert 35 <= len(lines) <= 50
    expected = sum(1 + len(e["synonyms"]) + len(e["relations"]) for e in lines)
    assert len(pairs) == expected
    liver = [p for p in pairs if p.key == "liver"]
    assert liver[0].positive.startswith("the largest organ")
    assert ("liver part of", "abdomen") in [(p.anchor, p.positive) for p in liver]
    assert ("liver", "hepar") in [(p.anchor, p.positive) for p in liver]


@pytest.mark.parametrize(
    "line,problem",
    [
        ("{not json", "line 2"),
        ('{"definition": "x"}', "line 2.*term"),
        ('{"term": "liver", "synonyms": "hepar"}', "line 2.*synonyms"),
        ('{"term": "liver", "relations": [["part of"]]}', "line 2.*relations"),
        ('{"term": "liver"}', "line 2.*no definition"),
        ('{"term": "liver", "defintion": "typo"}', "line 2.*unknown fields"),
    ],
)
def test_bad_knowledge_lines(tmp_path, line, problem):
    path = tmp_path / "k.jsonl"
    path.write_text('{"term": "spleen", "definition": "an organ"}\n' + line + "\n")
    with pytest.raises(BundleInputError, match=problem):
        read_knowledge_pairs(path)


def test_single_positive_loss_is_symmetric_cross_entropy():
    torch.manual_seed(0)
    a, b = torch.randn(6, 8), torch.randn(6, 8)
    loss = MultiPositiveInfoNCE()
    assert loss.scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    logits = (1 / 0.07) * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    labels = torch.arange(6)
    expected = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    torch.testing.assert_close(loss(a, b, torch.eye(6, dtype=torch.bool)), expected)


def test_multi_positive_targets_and_scale_cap():
    positives = match_matrix(["liver", "spleen", "liver"])
    assert positives.tolist() == [[True, False, True], [False, True, False], [True, False, True]]
    loss = MultiPositiveInfoNCE(initial_scale=10.0)
    candidates = torch.eye(3)[[0, 2, 1]]
    between = torch.tensor([1.0, -1.0, 0.0])  # from candidate 2 towards candidate 0
    pulls = []
    for targets in (positives, torch.eye(3, dtype=torch.bool)):
        anchors = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]], requires_grad=True)
        loss(anchors, candidates, targets).backward()
        pulls.append(float(anchors.grad[0] @ between))
    # anchor 0 lies halfway between its two positives: no pull with multi-positive targets, a strong one without
    assert abs(pulls[0]) < 1e-5 and abs(pulls[1]) > 0.5
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    with torch.no_grad():
        loss.log_scale.fill_(10.0)
    assert loss.scale.item() == pytest.approx(100.0)
    with pytest.raises(ValueError, match="diagonal"):
        loss(a, a, torch.zeros(3, 3, dtype=torch.bool))


def test_open_top_layers_on_tiny_mpnet():
    config = MPNetConfig(vocab_size=30, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=40)
    encoder = KnowledgeEncoder(config)
    names = open_top_layers(encoder, 1, train_projection=False)
    assert names and all(n.startswith("text_tower.biolord.encoder.layer.2.") for n in names)
    names = open_top_layers(encoder, 2, train_projection=True)
    assert {n.split(".")[0] for n in names} == {"text_tower", "projection_layer"}
    assert not any("encoder.layer.0." in n or "embeddings" in n or "pooler" in n or "modality" in n for n in names)
    with pytest.raises(ConfigurationError, match="between 0 and 3"):
        open_top_layers(encoder, 4, train_projection=False)
    with pytest.raises(ConfigurationError, match="nothing to train"):
        open_top_layers(encoder, 0, train_projection=False)


def test_projection_training_lowers_loss_and_checkpoint_reloads(tmp_path, example_file):
    output = tmp_path / "models" / "text_encoder.pt"
    job = KnowledgePretraining(
        example_file, output, encoder_kind="sentence", feature="projected", open_layers=0, steps=25,
        batch_size=24, lr=1e-3, warmup_steps=2, progress=False, checkpoint_every=25,
    )
    tower_before = {k: v.clone() for k, v in job.encoder.tower.state_dict().items()}
    result = job.run()
    assert result["final_loss"] < 0.8 * result["initial_loss"]
    assert (tmp_path / "models" / "pretrain_checkpoints" / "last.pt").is_file()
    fresh = build_text_encoder("sentence")
    load_state_dict_strict(fresh, read_state_dict(output), source=str(output))
    for key, value in job.encoder.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value.cpu()), key
    for key, value in tower_before.items():
        assert torch.equal(job.encoder.tower.state_dict()[key], value), key
    assert not any(p.name.startswith(".tmp-") for p in output.parent.iterdir())


@pytest.fixture()
def tiny_mpnet_dir(tmp_path, example_file):
    """A tiny MPNet folder (config, weights, word-level tokenizer covering the example file)."""
    words = sorted(set(re.findall(r"\w+|[^\w\s]", example_file.read_text().lower())))
    vocab = ["<s>", "<pad>", "</s>", "<unk>", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    folder = tmp_path / "tiny_mpnet"
    MPNetTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)
    MPNetModel(config).save_pretrained(folder)
    return folder


def test_raw_training_moves_only_open_layers(tmp_path, example_file, tiny_mpnet_dir):
    output = tmp_path / "enc.pt"
    job = KnowledgePretraining(
        example_file, output, encoder_kind="ours", model_dir=tiny_mpnet_dir, feature="raw", open_layers=1,
        steps=30, batch_size=32, lr=3e-3, warmup_steps=0, progress=False,
    )
    before = {k: v.clone() for k, v in job.encoder.state_dict().items()}
    result = job.run()
    after = job.encoder.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("text_tower.biolord.encoder.layer.1.") for k in changed)
    assert result["final_loss"] < 0.9 * result["initial_loss"]
    fresh = build_text_encoder("ours", model_dir=tiny_mpnet_dir)
    load_state_dict_strict(fresh, read_state_dict(output), source=str(output))
    assert torch.equal(fresh.state_dict()["text_tower.biolord.encoder.layer.1.output.dense.weight"],
                       after["text_tower.biolord.encoder.layer.1.output.dense.weight"])
