"""SAT text encoders: official tokenisation and pooling, modality embedding, key layout, offline loading."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, MPNetConfig, MPNetModel, MPNetTokenizer

from bundles.errors import CheckpointError, ConfigurationError, PromptError
from bundles.networks.sat import modality_rows
from bundles.networks.sat.text_encoder import (
    BertCLSEncoder,
    KnowledgeEncoder,
    SentenceEncoder,
    build_text_encoder,
    default_tower_config,
)

WORDS = ["<s>", "<pad>", "</s>", "<unk>", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
         "liver", "left", "kidney", "right", "lung", "upper", "lobe", "##s", "brain", "tumor", "of", "the"]


def tiny_config() -> MPNetConfig:
    return MPNetConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, max_position_embeddings=40)


@pytest.fixture()
def tiny_mpnet_dir(tmp_path):
    """A local MPNet folder: config.json + tokenizer files (no weights)."""
    MPNetTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(tmp_path)
    tiny_config().save_pretrained(tmp_path)
    return tmp_path


@pytest.fixture()
def knowledge(tiny_mpnet_dir) -> KnowledgeEncoder:
    torch.manual_seed(0)
    return build_text_encoder("knowledge", model_dir=tiny_mpnet_dir).eval()


def test_official_tokenisation(knowledge):
    ids, mask = knowledge.tokenize(["liver", "right lung upper lobes"])
    cls, sep = WORDS.index("[CLS]"), WORDS.index("[SEP]")
    expected_long = [cls] + [WORDS.index(w) for w in ("right", "lung", "upper", "lobe", "##s")] + [sep]
    assert ids.tolist() == [[cls, WORDS.index("liver"), sep, 0, 0, 0, 0], expected_long]
    assert torch.equal(mask, ids > 0)
    knowledge.max_tokens = 4
    ids, _ = knowledge.tokenize(["right lung upper lobes"])
    assert ids.tolist() == [[cls, WORDS.index("right"), WORDS.index("lung"), sep]]


def test_knowledge_encoder_shapes_padding_and_modality(knowledge):
    with torch.no_grad():
        alone = knowledge(["Liver"], "ct")
        batched = knowledge(["liver", "the left kidney of the right lung upper lobe"], "ct")
        mri = knowledge(["liver"], "MR")
        mixed = knowledge(["liver", "liver"], ["ct", "pet"])
    assert alone.shape == (1, 768) and batched.shape == (2, 768)
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batched[0], batched[1], atol=1e-3)
    delta = knowledge.modality_embed.weight[0] - knowledge.modality_embed.weight[1]
    torch.testing.assert_close(alone[0] - mri[0], delta, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[0], alone[0], atol=1e-5, rtol=1e-5)
    assert (mixed[1] - mixed[0]).abs().max() > 1e-2


def test_knowledge_pooling_is_masked_mean_then_projection(knowledge):
    ids, mask = knowledge.tokenize(["left kidney"])
    with torch.no_grad():
        hidden = knowledge.tower(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        expected = knowledge.projection_layer(hidden[0].mean(0, keepdim=True)) + knowledge.modality_embed.weight[3]
        torch.testing.assert_close(knowledge(["left kidney"], "pet"), expected, atol=1e-5, rtol=1e-5)


def test_bad_prompts_and_modalities(knowledge):
    with pytest.raises(PromptError):
        knowledge([], "ct")
    with pytest.raises(PromptError):
        knowledge("liver", "ct")
    with pytest.raises(PromptError, match="accepted values"):
        knowledge(["liver"], "ct scan")
    with pytest.raises(PromptError, match="2 terms but 1 modalities"):
        knowledge(["liver", "lung"], ["ct"])


def test_modality_rows_are_those_of_the_released_weights(monkeypatch):
    assert modality_rows.MODALITY_ROWS == ("ct", "mri", "us", "pet")  # SAT modality_embed row order
    assert [modality_rows.modality_row(m) for m in ("CT", "mr", "us", "pet")] == [0, 1, 2, 3]
    monkeypatch.setattr(modality_rows, "normalize_modality", lambda m: "xray")  # a modality the core may add later
    with pytest.raises(PromptError, match="no modality embedding for 'xray'"):
        modality_rows.modality_row("xray")


@pytest.mark.parametrize("kind,official", [("knowledge", "ours"), ("medcpt", "medcpt"), ("basebert", "basebert")])
def test_full_size_keys_equal_official(repo_root, kind, official):
    table = json.loads((repo_root / "tests/data/sat_text_encoder_keys.json").read_text())
    expected = {k.removeprefix("module."): v for k, v in table["text_encoders"][official].items() if "position_ids" not in k}
    with torch.device("meta"):
        encoder = build_text_encoder(kind, config=default_tower_config(kind))
    assert {k: list(v.shape) for k, v in encoder.state_dict().items()} == expected
    assert sum(p.numel() for p in encoder.parameters()) == table["n_params"][official]


def test_encoder_without_tokenizer_refuses_text():
    encoder = KnowledgeEncoder(tiny_config())
    with pytest.raises(ConfigurationError, match="no tokenizer"):
        encoder(["liver"], "ct")
    bert = BertCLSEncoder(BertConfig(vocab_size=50, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    with pytest.raises(ConfigurationError, match="no tokenizer"):
        bert(["liver"], "ct")


def test_missing_model_dir_is_explained(tmp_path):
    with pytest.raises(ConfigurationError, match="config.json missing.*BioLORD-2023-C.*nothing is downloaded"):
        build_text_encoder("knowledge", model_dir=tmp_path / "absent")
    with pytest.raises(ConfigurationError, match="needs model_dir.*MedCPT"):
        build_text_encoder("medcpt")
    with pytest.raises(ConfigurationError, match="unknown text encoder kind"):
        build_text_encoder("clip")


def test_pretrained_tower_is_loaded_and_required(tiny_mpnet_dir):
    with pytest.raises(ConfigurationError, match="no weights"):
        build_text_encoder("ours", model_dir=tiny_mpnet_dir, pretrained_tower=True)
    torch.manual_seed(1)
    MPNetModel(tiny_config()).save_pretrained(tiny_mpnet_dir)
    saved = MPNetModel.from_pretrained(tiny_mpnet_dir).state_dict()
    encoder = build_text_encoder("ours", model_dir=tiny_mpnet_dir, pretrained_tower=True)
    for key, value in saved.items():
        assert torch.equal(encoder.tower.state_dict()[key], value), key
    deeper = tiny_config()
    deeper.num_hidden_layers = 3
    deeper.save_pretrained(tiny_mpnet_dir)
    with pytest.raises(CheckpointError, match="missing.*encoder.layer.2"):
        build_text_encoder("ours", model_dir=tiny_mpnet_dir, pretrained_tower=True)


@pytest.fixture(scope="module")
def sentence() -> SentenceEncoder:
    torch.manual_seed(0)
    return build_text_encoder("sentence").eval()


def test_sentence_encoder_from_packaged_minilm(sentence):
    with torch.no_grad():
        out = sentence(["liver", "left kidney", "brain tumor"], "ct")
        pooled = sentence.pooled(["liver", "left kidney"])
    assert out.shape == (3, 768) and pooled.shape == (2, 384)
    assert torch.isfinite(out).all()
    assert (out[0] - out[1]).abs().max() > 1e-3 and (out[1] - out[2]).abs().max() > 1e-3
    assert torch.cosine_similarity(pooled[0], pooled[1], dim=0) < 0.99
    assert sentence.tower_frozen and not sentence.tower.training
    sentence.train()
    assert sentence.projection_layer.training and not sentence.tower.training
    sentence.eval()


def test_sentence_features_are_memoised_while_frozen(sentence):
    calls = []
    handle = sentence.tower.register_forward_hook(lambda *_: calls.append(1))
    try:
        sentence._memo.clear()
        first = sentence.pooled(["spleen", "aorta"])
        assert len(calls) == 2  # one text at a time: a feature never depends on its batch companions
        again = sentence.pooled(["aorta", "spleen"])
        assert len(calls) == 2
        torch.testing.assert_close(again, first.flip(0))
        torch.testing.assert_close(first[0], sentence._run_tower(["spleen"])[0])
        sentence.load_state_dict(sentence.state_dict())
        sentence.pooled(["spleen"])
        assert len(calls) == 4
    finally:
        handle.remove()
