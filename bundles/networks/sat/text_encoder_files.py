"""Reading Hugging Face model folders strictly offline (config, tokenizer, optional weights).

The official SAT code downloads its text tower and tokenizer from the Hugging Face hub at run time
(official SAT issues). Here every file comes from a local folder (``local_files_only=True``) and a
missing folder or file is a :class:`~bundles.errors.ConfigurationError` that says what to put where.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from torch import nn
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from bundles.errors import CheckpointError, ConfigurationError
from bundles.progress import show_progress

__all__ = ["model_folder", "read_config", "read_tokenizer", "read_pretrained_tower"]

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def model_folder(model_dir: str | PathLike, what: str) -> Path:
    """Return ``model_dir`` as a Path after checking it is a folder with a ``config.json``.

    Args:
        what: the model it should hold, for the message (e.g. "FremyCompany/BioLORD-2023-C").

    Raises:
        ConfigurationError: the folder or its ``config.json`` is missing.
    """
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ConfigurationError(
            f"{path}: no Hugging Face model folder here (config.json missing). Copy the files of {what} "
            "(config.json, tokenizer.json or vocab.txt, tokenizer_config.json; the weights only if the tower "
            "is not loaded from a converted checkpoint) into this folder, e.g. with "
            "`huggingface-cli download <repo> --local-dir <folder>` on a machine with internet access; "
            "nothing is downloaded at run time"
        )
    return path


def read_config(model_dir: str | PathLike, model_type: str, what: str) -> PretrainedConfig:
    """Read ``config.json`` of ``model_dir`` and check its ``model_type`` (e.g. "mpnet", "bert").

    Raises:
        ConfigurationError: folder/config missing, unreadable, or of another model type.
    """
    path = model_folder(model_dir, what)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"{path / 'config.json'}: cannot read the model config ({e})") from e
    if config.model_type != model_type:
        raise ConfigurationError(
            f"{path / 'config.json'}: model_type is {config.model_type!r}, this encoder needs {model_type!r} ({what})"
        )
    return config


def read_tokenizer(model_dir: str | PathLike, what: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer files of ``model_dir`` offline.

    Raises:
        ConfigurationError: the folder has no usable tokenizer files.
    """
    path = model_folder(model_dir, what)
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigurationError(
            f"{path}: cannot load the tokenizer of {what} ({e}); copy tokenizer.json or vocab.txt and "
            "tokenizer_config.json of that model into the folder"
        ) from e


def read_pretrained_tower(
    model_cls: type[PreTrainedModel], model_dir: str | PathLike, what: str, *, optional: tuple[str, ...] = ()
) -> nn.Module:
    """Load a transformer with its weights from ``model_dir`` offline, refusing missing/unexpected keys.

    Args:
        optional: key prefixes that may be absent from the files (e.g. an unused ``pooler.``); they keep
            their random initialisation.

    Raises:
        ConfigurationError: no weight file in the folder.
        CheckpointError: the weights do not fit the configured model (names the keys).
    """
    path = model_folder(model_dir, what)
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise ConfigurationError(
            f"{path}: no weights ({' or '.join(_WEIGHT_FILES)}) for {what}; copy them there, or build the "
            "tower from its config and load a converted checkpoint instead"
        )
    try:
        if not show_progress(True):  # transformers' "Loading weights" bar would litter logs with redraws
            transformers_logging.disable_progress_bar()
        model, info = model_cls.from_pretrained(path, local_files_only=True, output_loading_info=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot load the weights of {what} into {model_cls.__name__} ({e})") from e
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(optional)]
    unexpected = list(info.get("unexpected_keys", []))
    mismatched = [str(m) for m in info.get("mismatched_keys", [])]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"{path}: weights do not fit {model_cls.__name__} (missing {sorted(missing)[:10]}, unexpected "
            f"{sorted(unexpected)[:10]}, mismatched {mismatched[:5]})"
        )
    return model
