"""SAT's BERT text encoders (official ``'medcpt'`` and ``'basebert'``): CLS token + modality embedding.

Recipe (official SAT ``model/text_encoder.py``): a BERT-base tower (``ncbi/MedCPT-Query-Encoder``
or ``bert-base-uncased``), the Hugging Face tokenizer with truncation, padding and ``max_length=64``, the
CLS token of the last hidden state, + ``modality_embed``. No projection layer. Keys: ``model.*``,
``modality_embed.weight``.
"""

from __future__ import annotations

from os import PathLike

import torch
from transformers import BertConfig, BertModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from bundles.errors import ConfigurationError
from bundles.networks.sat.text_encoder_base import TextQueryEncoder
from bundles.networks.sat.text_encoder_files import read_config, read_pretrained_tower, read_tokenizer

__all__ = ["BERT_TOWERS", "MAX_TOKENS", "BertCLSEncoder"]

#: Hugging Face models behind the two BERT encoder kinds (SAT ``model/text_encoder.py``).
BERT_TOWERS = {"medcpt": "ncbi/MedCPT-Query-Encoder", "basebert": "bert-base-uncased"}

#: Tokenizer ``max_length`` of the official BERT encoders (SAT ``model/text_encoder.py``).
MAX_TOKENS = 64


class BertCLSEncoder(TextQueryEncoder):
    """BERT CLS embedding + modality embedding; (terms, modality) -> (N, 768).

    Args:
        config: BERT geometry (``BertConfig()`` = bert-base for both official kinds).
        tokenizer: the model's tokenizer; ``None`` for conversion and key checks (then :meth:`forward` raises).
        tower: an already loaded ``BertModel`` (its config wins).
        kind: ``"medcpt"`` or ``"basebert"``, only used in messages.
    """

    def __init__(
        self,
        config: BertConfig | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        tower: BertModel | None = None,
        kind: str = "medcpt",
        max_tokens: int = MAX_TOKENS,
    ):
        if kind not in BERT_TOWERS:
            raise ConfigurationError(f"unknown BERT encoder kind {kind!r}; expected one of {sorted(BERT_TOWERS)}")
        super().__init__()
        self.model = tower if tower is not None else BertModel(config or BertConfig())
        self.tokenizer = tokenizer
        self.kind = kind
        self.max_tokens = max_tokens

    @classmethod
    def from_model_dir(cls, model_dir: str | PathLike, kind: str, *, pretrained_tower: bool = False) -> BertCLSEncoder:
        """Build from a local folder with the BERT ``config.json`` and tokenizer files (weights optional).

        Raises:
            ConfigurationError: folder, config, tokenizer or (with ``pretrained_tower``) weights missing.
            CheckpointError: the folder's weights do not fit the config.
        """
        what = BERT_TOWERS.get(kind, kind)
        tokenizer = read_tokenizer(model_dir, what)
        if pretrained_tower:
            tower = read_pretrained_tower(BertModel, model_dir, what)
            return cls(tokenizer=tokenizer, tower=tower, kind=kind)
        return cls(read_config(model_dir, "bert", what), tokenizer, kind=kind)

    @property
    def tower(self) -> BertModel:
        return self.model

    def pooled(self, texts: list[str]) -> torch.Tensor:
        """CLS token (N, 768) of the last hidden state."""
        if self.tokenizer is None:
            raise ConfigurationError(
                f"this {self.kind} encoder has no tokenizer; build it with BertCLSEncoder.from_model_dir(<folder "
                f"with the {BERT_TOWERS[self.kind]} tokenizer files>, {self.kind!r})"
            )
        batch = self.tokenizer(
            texts, max_length=self.max_tokens, truncation=True, padding=True, return_tensors="pt"
        ).to(self.device)
        return self.model(**batch).last_hidden_state[:, 0]
