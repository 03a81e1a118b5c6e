"""Query-embedding cache: computes only missing rows, reuses across instances, keyed by encoder weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bundles.errors import CheckpointError, ConfigurationError
from bundles.networks.sat.text_encoder import build_text_encoder
from bundles.sat.query_cache import QueryEmbeddingCache, encoder_id_from_file


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return build_text_encoder("sentence")


@pytest.fixture()
def calls(encoder):
    """Records the terms of every encoder call."""
    seen: list[list[str]] = []
    handle = encoder.register_forward_hook(lambda _m, args, _out: seen.append(list(args[0])))
    yield seen
    handle.remove()


def test_second_call_uses_cache(tmp_path, encoder, calls):
    cache = QueryEmbeddingCache(tmp_path, "enc-a")
    first = cache.get(encoder, ["Liver", "spleen"], "ct")
    second = cache.get(encoder, ["spleen", "liver"], "CT")
    assert calls == [["liver", "spleen"]]
    assert first.shape == (2, 768)
    assert torch.equal(second, first.flip(0))
    with torch.no_grad():
        torch.testing.assert_close(first, encoder.eval()(["liver", "spleen"], "ct"))


def test_only_missing_rows_are_computed_and_file_is_reused(tmp_path, encoder, calls):
    cache = QueryEmbeddingCache(tmp_path, "enc-a")
    cache.get(encoder, ["liver"], "ct")
    both = cache.get(encoder, ["liver", "spleen", "liver"], "ct")
    cache.get(encoder, ["liver"], "mri")
    assert calls == [["liver"], ["spleen"], ["liver"]]
    assert torch.equal(both[0], both[2])
    reopened = QueryEmbeddingCache(tmp_path, "enc-a")
    assert len(reopened) == 3 and reopened.has(["liver", "spleen"], "ct") and not reopened.has(["aorta"], "ct")
    assert torch.equal(reopened.get(encoder, ["liver", "spleen"], "ct"), both[:2])
    assert len(calls) == 3
    assert not torch.equal(reopened.lookup(["liver"], "ct"), reopened.lookup(["liver"], "mri"))


def test_other_encoder_id_does_not_reuse(tmp_path, encoder, calls):
    QueryEmbeddingCache(tmp_path, "enc-a").get(encoder, ["liver"], "ct")
    other = QueryEmbeddingCache(tmp_path, "enc-b")
    assert not other.has(["liver"], "ct")
    other.get(encoder, ["liver"], "ct")
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc-a.pt", "enc-b.pt"]


def test_file_written_atomically(tmp_path, encoder, monkeypatch):
    cache = QueryEmbeddingCache(tmp_path, "enc-a")
    cache.get(encoder, ["liver"], "ct")
    saved = torch.load(tmp_path / "enc-a.pt", weights_only=True)
    assert list(saved) == ["ct/liver"] and saved["ct/liver"].shape == (768,)

    def failing_write(path, data):
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", failing_write)
    with pytest.raises(OSError, match="disk full"):
        cache.get(encoder, ["spleen"], "ct")
    monkeypatch.undo()
    assert list(torch.load(tmp_path / "enc-a.pt", weights_only=True)) == ["ct/liver"]
    assert [p.name for p in tmp_path.iterdir()] == ["enc-a.pt"]


def test_training_mode_restored(tmp_path, encoder):
    encoder.train()
    QueryEmbeddingCache(tmp_path, "enc-a").get(encoder, ["aorta"], "ct")
    assert encoder.training
    encoder.eval()


def test_precompute_whole_modality(tmp_path, encoder, calls):
    cache = QueryEmbeddingCache(tmp_path, "enc-a")
    assert cache.precompute(encoder, "pet") == 3
    assert calls == [["head and neck tumor", "lymph node", "tumor"]]
    with pytest.raises(ConfigurationError):
        cache.precompute(encoder, "us")


def test_encoder_id_follows_file_content(tmp_path):
    a, b = tmp_path / "text_encoder.pt", tmp_path / "copy.pt"
    a.write_bytes(b"weights v1")
    b.write_bytes(b"weights v1")
    assert encoder_id_from_file(a).split("-")[-1] == encoder_id_from_file(b).split("-")[-1]
    b.write_bytes(b"weights v2")
    assert encoder_id_from_file(a).split("-")[-1] != encoder_id_from_file(b).split("-")[-1]
    assert encoder_id_from_file(a).startswith("text_encoder-")
    with pytest.raises(CheckpointError, match="absent.pt"):
        encoder_id_from_file(tmp_path / "absent.pt")


def test_bad_cache_file_and_id(tmp_path):
    (tmp_path / "enc-a.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="enc-a.pt.*delete the file"):
        QueryEmbeddingCache(tmp_path, "enc-a")
    with pytest.raises(ConfigurationError):
        QueryEmbeddingCache(tmp_path, "../escape")
