"""Factory for SAT's text encoders: ``build_text_encoder(kind, model_dir=..., config=...)``.

Kinds (official SAT ``model/text_encoder.py``): ``"knowledge"`` (official ``'ours'``, the encoder of both released models),
``"medcpt"`` and ``"basebert"`` (the paper's ablations), and ``"sentence"`` (ours: any local
sentence-embedding model, default the offline all-MiniLM-L6-v2). Every encoder maps
``(terms, modality) -> (N, 768)`` query embeddings.
"""

from __future__ import annotations

from os import PathLike

import torch
from transformers import BertConfig, MPNetConfig, PretrainedConfig

from bundles.errors import ConfigurationError
from bundles.networks.sat.text_encoder_base import QUERY_DIM, TextQueryEncoder
from bundles.networks.sat.text_encoder_bert import BERT_TOWERS, BertCLSEncoder
from bundles.networks.sat.text_encoder_knowledge import KNOWLEDGE_TOWER, KnowledgeEncoder, knowledge_tower_config
from bundles.networks.sat.text_encoder_sentence import SentenceEncoder

__all__ = [
    "QUERY_DIM",
    "TEXT_ENCODER_KINDS",
    "TextQueryEncoder",
    "KnowledgeEncoder",
    "BertCLSEncoder",
    "SentenceEncoder",
    "build_text_encoder",
    "canonical_kind",
    "default_tower_config",
]

#: Our encoder kinds; the official option value ``'ours'`` is accepted as an alias of ``"knowledge"``.
TEXT_ENCODER_KINDS = ("knowledge", "medcpt", "basebert", "sentence")
_ALIASES = {"ours": "knowledge"}


def canonical_kind(kind: str) -> str:
    """Return our name for an encoder kind (``'ours'`` -> ``'knowledge'``).

    Raises:
        ConfigurationError: an unknown kind.
    """
    name = _ALIASES.get(str(kind).strip().lower(), str(kind).strip().lower())
    if name not in TEXT_ENCODER_KINDS:
        raise ConfigurationError(f"unknown text encoder kind {kind!r}; expected one of {', '.join(TEXT_ENCODER_KINDS)} (or 'ours')")
    return name


def default_tower_config(kind: str) -> PretrainedConfig:
    """Tower geometry of the official encoder ``kind`` (MPNet for knowledge, bert-base for the BERT kinds).

    Raises:
        ConfigurationError: ``kind`` has no fixed geometry (``"sentence"``) or is unknown.
    """
    kind = canonical_kind(kind)
    if kind == "knowledge":
        return knowledge_tower_config()
    if kind in BERT_TOWERS:
        return BertConfig()
    raise ConfigurationError("the sentence encoder takes its geometry from its model folder; pass model_dir")


def _tower_name(kind: str) -> str:
    return KNOWLEDGE_TOWER if kind == "knowledge" else BERT_TOWERS.get(kind, "a sentence-embedding model")


def build_text_encoder(
    kind: str,
    model_dir: str | PathLike | None = None,
    config: PretrainedConfig | None = None,
    *,
    pretrained_tower: bool = False,
    freeze_tower: bool = True,
    device: str | torch.device | None = None,
) -> TextQueryEncoder:
    """Build a text encoder of ``kind`` from a local model folder or from a config.

    Args:
        kind: ``"knowledge"`` (or ``"ours"``), ``"medcpt"``, ``"basebert"`` or ``"sentence"``.
        model_dir: local folder with the tower's ``config.json`` and tokenizer files (never downloaded).
            Optional for ``"sentence"`` (default: the packaged all-MiniLM-L6-v2).
        config: build the tower from this config instead, without tokenizer (checkpoint conversion, key
            checks); the encoder then cannot embed text. Not for ``"sentence"``.
        pretrained_tower: also load the tower weights from ``model_dir`` (knowledge/BERT kinds; the
            sentence tower always loads them). Otherwise the weights come from a converted checkpoint.
        freeze_tower: sentence encoder only: keep its tower fixed (features memoised).
        device: where to put the encoder (default CPU).

    Raises:
        ConfigurationError: unknown kind; neither or both of ``model_dir``/``config``; a missing folder or file
            (the message says which files to put where; nothing is downloaded).
        CheckpointError: tower weights in ``model_dir`` that do not fit its config.
    """
    kind = canonical_kind(kind)
    if kind == "sentence":
        if config is not None:
            raise ConfigurationError("the sentence encoder needs a model folder with weights, not a config")
        encoder: TextQueryEncoder = SentenceEncoder.from_model_dir(model_dir, freeze_tower=freeze_tower)
    elif model_dir is not None and config is not None:
        raise ConfigurationError(f"give either model_dir or config for the {kind} text encoder, not both")
    elif model_dir is not None:
        if kind == "knowledge":
            encoder = KnowledgeEncoder.from_model_dir(model_dir, pretrained_tower=pretrained_tower)
        else:
            encoder = BertCLSEncoder.from_model_dir(model_dir, kind, pretrained_tower=pretrained_tower)
    elif config is not None:
        if kind == "knowledge":
            if not isinstance(config, MPNetConfig):
                raise ConfigurationError(f"the knowledge encoder needs an MPNetConfig, got {type(config).__name__}")
            encoder = KnowledgeEncoder(config)
        else:
            if not isinstance(config, BertConfig):
                raise ConfigurationError(f"the {kind} encoder needs a BertConfig, got {type(config).__name__}")
            encoder = BertCLSEncoder(config, kind=kind)
    else:
        raise ConfigurationError(
            f"the {kind} text encoder needs model_dir: a local folder with config.json and the tokenizer files "
            f"of {_tower_name(kind)} (copy them there from the Hugging Face hub on a machine with internet "
            "access; nothing is downloaded at run time)"
        )
    return encoder.to(device) if device is not None else encoder
