"""SAT's knowledge-enhanced text encoder (official ``'ours'``, ``Knowledge_Encoder``), used by both releases.

Recipe (official SAT ``model/knowledge_encoder.py``):

- tower: an MPNet (``FremyCompany/BioLORD-2023-C``, all-mpnet-base-v2 geometry: vocab 30527, hidden 768,
  12 layers, 12 heads, FFN 3072, 514 positions, 32 relative-attention buckets);
- tokens: the strings ``'[CLS]'`` + ``tokenizer.tokenize(text)`` + ``'[SEP]'`` converted with the tokenizer's
  vocabulary (BERT-style marker strings, whatever ids the MPNet vocabulary gives them), at most 256 tokens
  with ``[SEP]`` kept last, right-padded with id 0 to the longest sequence; attention mask = ``ids > 0``;
- last hidden state mean-pooled over the mask -> ``projection_layer`` (Linear 768-768, GELU, Linear 768-768)
  -> + ``modality_embed``.

State-dict keys equal the official ones without DDP's ``module.`` prefix: ``text_tower.biolord.*``,
``projection_layer.{0,2}.*``, ``modality_embed.weight``.
"""

from __future__ import annotations

from os import PathLike

import torch
from torch import nn
from transformers import MPNetConfig, MPNetModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from bundles.errors import ConfigurationError
from bundles.networks.sat.text_encoder_base import QUERY_DIM, TextQueryEncoder, mean_pool
from bundles.networks.sat.text_encoder_files import read_config, read_pretrained_tower, read_tokenizer

__all__ = ["KNOWLEDGE_TOWER", "MAX_TOKENS", "KnowledgeEncoder", "knowledge_tower_config"]

#: The Hugging Face model the official tower is built from (SAT ``model/knowledge_encoder.py``).
KNOWLEDGE_TOWER = "FremyCompany/BioLORD-2023-C"

#: Maximum token count of the official custom tokenizer (SAT ``model/knowledge_encoder.py``).
MAX_TOKENS = 256


def knowledge_tower_config() -> MPNetConfig:
    """MPNet geometry of the released tower (all-mpnet-base-v2 / BioLORD-2023-C; official SAT model/maskformer.py)."""
    return MPNetConfig(vocab_size=30527, max_position_embeddings=514)


class _TextTower(nn.Module):
    """Holds the MPNet under the official attribute name ``biolord`` (key prefix ``text_tower.biolord.``)."""

    def __init__(self, biolord: MPNetModel):
        super().__init__()
        self.biolord = biolord


class KnowledgeEncoder(TextQueryEncoder):
    """MPNet + mean pooling + projection + modality embedding; (terms, modality) -> (N, 768).

    Args:
        config: MPNet geometry (:func:`knowledge_tower_config` for the released model).
        tokenizer: the MPNet tokenizer; may be ``None`` for conversion and key checks, then
            :meth:`forward` raises.
        tower: an already loaded ``MPNetModel`` (its config wins over ``config``); built randomly otherwise.
        max_tokens: longest token sequence, ``[CLS]`` and ``[SEP]`` included.
    """

    def __init__(
        self,
        config: MPNetConfig | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        tower: MPNetModel | None = None,
        max_tokens: int = MAX_TOKENS,
    ):
        super().__init__()
        biolord = tower if tower is not None else MPNetModel(config or knowledge_tower_config())
        hidden = biolord.config.hidden_size
        self.text_tower = _TextTower(biolord)
        self.projection_layer = nn.Sequential(nn.Linear(hidden, QUERY_DIM), nn.GELU(), nn.Linear(QUERY_DIM, QUERY_DIM))
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    @classmethod
    def from_model_dir(cls, model_dir: str | PathLike, *, pretrained_tower: bool = False) -> KnowledgeEncoder:
        """Build from a local folder holding the MPNet ``config.json`` and tokenizer files.

        Args:
            pretrained_tower: also load the tower weights from the folder (to start knowledge pretraining
                from BioLORD); otherwise the tower is random and a converted checkpoint is loaded next.

        Raises:
            ConfigurationError: folder, config, tokenizer or (with ``pretrained_tower``) weights missing.
            CheckpointError: the folder's weights do not fit the config.
        """
        tokenizer = read_tokenizer(model_dir, KNOWLEDGE_TOWER)
        if pretrained_tower:
            tower = read_pretrained_tower(MPNetModel, model_dir, KNOWLEDGE_TOWER, optional=("pooler.",))
            return cls(tokenizer=tokenizer, tower=tower)
        return cls(read_config(model_dir, "mpnet", KNOWLEDGE_TOWER), tokenizer)

    @property
    def tower(self) -> MPNetModel:
        return self.text_tower.biolord

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (N, L) right-padded with 0, and the attention mask (N, L) = ids > 0.

        Raises:
            ConfigurationError: the encoder was built without a tokenizer.
        """
        if self.tokenizer is None:
            raise ConfigurationError(
                "this KnowledgeEncoder has no tokenizer; build it with KnowledgeEncoder.from_model_dir(<folder "
                f"with the {KNOWLEDGE_TOWER} tokenizer files>)"
            )
        cls_id, sep_id = self.tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
        rows = []
        for text in texts:
            ids = [cls_id, *self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(text)), sep_id]
            if len(ids) > self.max_tokens:
                ids = [*ids[: self.max_tokens - 1], sep_id]
            rows.append(ids)
        ids = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        ids = ids.to(self.device)
        return ids, ids > 0

    def pooled(self, texts: list[str]) -> torch.Tensor:
        """Mask-averaged last hidden state (N, hidden) of the MPNet."""
        ids, mask = self.tokenize(texts)
        hidden = self.tower(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return mean_pool(hidden, mask)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.projection_layer(pooled)
