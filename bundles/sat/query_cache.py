"""Disk cache of text-query embeddings, keyed by the text encoder's weights.

SAT's text encoder is frozen at inference, so a term's 768-d query only depends on (encoder weights,
modality, term). The cache keeps one file per encoder, ``<cache_dir>/<encoder_id>.pt``, holding a dict
``"<modality>/<term>" -> (768,) tensor``; the id is derived from the sha256 of the encoder's weights file
(:func:`encoder_id_from_file`), so embeddings of another checkpoint are never reused. When the model folder
is read-only (a shared or packaged model), new embeddings go to :func:`user_cache_dir` instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from bundles.checkpoints.loading import load_weights
from bundles.checkpoints.release import file_sha256
from bundles.errors import CheckpointError, ConfigurationError, PromptError
from bundles.io.atomic import atomic_torch_save, folder_write_problem
from bundles.io.modality import normalize_modality
from bundles.networks.sat.term_text import normalize_term
from bundles.sat.vocabulary import load_sat_vocabulary

__all__ = ["QueryEmbeddingCache", "CachedQueries", "QueryProvider", "encoder_id_from_file", "user_cache_dir"]

logger = logging.getLogger(__name__)

_ID_LENGTH = 16


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/medseg-bundles`` (default ``~/.cache/medseg-bundles``): where caches go when the
    model folder is read-only."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medseg-bundles"


def encoder_id_from_file(path: str | PathLike) -> str:
    """Cache id of an encoder weights file: ``<file stem>-<first 16 hex digits of its sha256>``.

    Raises:
        CheckpointError: the file does not exist.
    """
    path = Path(path)
    return f"{path.stem}-{file_sha256(path)[:_ID_LENGTH]}"


class QueryEmbeddingCache:
    """Query embeddings (N, 768) per (modality, term), computed once per encoder and stored on disk.

    Args:
        cache_dir: folder of the cache files (created on first write).
        encoder_id: identifies the encoder weights, normally :func:`encoder_id_from_file`.

    Raises:
        ConfigurationError: ``encoder_id`` is empty or contains a path separator.
        CheckpointError: an existing cache file cannot be read (the message says to delete it).
    """

    def __init__(self, cache_dir: str | PathLike, encoder_id: str):
        if not encoder_id or any(sep in encoder_id for sep in ("/", "\\")) or encoder_id.startswith("."):
            raise ConfigurationError(f"invalid encoder_id {encoder_id!r}; use encoder_id_from_file(<weights file>)")
        self.encoder_id = encoder_id
        self.path = Path(cache_dir) / f"{encoder_id}.pt"
        self._rows: dict[str, torch.Tensor] = self._read() if self.path.is_file() else {}
        if folder_write_problem(self.path.parent) is not None:
            fallback = user_cache_dir() / "query_cache"
            logger.info("%s is read-only: new query embeddings are cached in %s", self.path.parent, fallback)
            self.path = fallback / self.path.name
            if not self._rows and self.path.is_file():
                self._rows = self._read()

    def _read(self) -> dict[str, torch.Tensor]:
        try:
            rows = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
            raise CheckpointError(f"{self.path}: unreadable embedding cache ({type(e).__name__}); delete the file to rebuild it") from e
        if not isinstance(rows, dict) or not all(isinstance(v, torch.Tensor) and v.ndim == 1 for v in rows.values()):
            raise CheckpointError(f"{self.path}: not an embedding cache (dict of 1-D tensors); delete the file to rebuild it")
        return rows

    def __len__(self) -> int:
        return len(self._rows)

    @staticmethod
    def key(term: str, modality: str) -> str:
        """Cache key ``"<modality>/<term>"`` of a normalised term and modality."""
        return f"{normalize_modality(modality)}/{normalize_term(term)}"

    def has(self, terms: Sequence[str], modality: str) -> bool:
        """True when every term of ``terms`` is cached for ``modality`` (no encoder needed)."""
        return all(self.key(t, modality) in self._rows for t in terms)

    def lookup(self, terms: Sequence[str], modality: str) -> torch.Tensor:
        """Cached embeddings (N, 768) of ``terms`` for ``modality``, on the CPU, in ``terms`` order.

        Raises:
            PromptError: ``terms`` is empty.
            KeyError: a term is not cached (check with :meth:`has`, or use :meth:`get`).
        """
        if not terms:
            raise PromptError("no text prompt given; pass at least one term")
        return torch.stack([self._rows[self.key(t, modality)] for t in terms])

    def get(self, encoder: nn.Module, terms: Sequence[str], modality: str) -> torch.Tensor:
        """Embeddings (N, 768) of ``terms`` for ``modality``, on the CPU, in ``terms`` order.

        Only missing rows are computed, with ``encoder(terms, modality)`` in eval mode without gradient (its
        training mode is restored); the cache file is then rewritten atomically.

        Raises:
            PromptError: no terms, an empty term or an unknown modality.
        """
        keys = [self.key(t, modality) for t in terms]
        missing = list(dict.fromkeys(k for k in keys if k not in self._rows))
        if missing:
            was_training = encoder.training
            encoder.eval()
            try:
                with torch.no_grad():
                    rows = encoder([k.split("/", 1)[1] for k in missing], normalize_modality(modality))
            finally:
                encoder.train(was_training)
            self._rows.update({k: row.detach().float().cpu().clone() for k, row in zip(missing, rows)})
            snapshot = dict(self._rows)
            atomic_torch_save(snapshot, self.path)
            logger.info("embedding cache %s: added %d rows", self.path, len(missing))
        return self.lookup(terms, modality)

    def precompute(self, encoder: nn.Module, modality: str, terms: Sequence[str] | None = None) -> int:
        """Fill the cache for ``terms`` (default: the whole SAT vocabulary of ``modality``); return its size.

        Raises:
            ConfigurationError: no terms (ultrasound has no SAT vocabulary and no terms were given).
            PromptError: an unknown modality.
        """
        names = list(terms) if terms is not None else load_sat_vocabulary().terms(modality)
        if not names:
            raise ConfigurationError(f"no terms to precompute for modality {modality!r}; pass terms=[...]")
        self.get(encoder, names, modality)
        return len(self)


#: ``(terms, modality) -> (Q, D)`` query embeddings, as :class:`CachedQueries` gives them.
QueryProvider = Callable[[Sequence[str], str], torch.Tensor]


class CachedQueries:
    """Query embeddings from the on-disk cache; the text encoder is built only for terms not cached yet.

    Args:
        cache_dir: folder of the cache files.
        encoder_checkpoint: the text encoder's weights file; its hash names the cache, so other weights
            never reuse stale embeddings.
        encoder_factory: zero-argument callable building the (weightless) text encoder.
        encoder_kind: the encoder kind, part of the cache name with the weights' hash (a different tower or
            tokenizer with the same weights file must not reuse embeddings).
    """

    def __init__(
        self,
        cache_dir: str | PathLike,
        encoder_checkpoint: str | PathLike,
        encoder_factory: Callable[[], nn.Module],
        encoder_kind: str = "",
    ):
        self.encoder_checkpoint = Path(encoder_checkpoint)
        encoder_id = encoder_id_from_file(self.encoder_checkpoint)
        self.cache = QueryEmbeddingCache(cache_dir, f"{encoder_kind}-{encoder_id}" if encoder_kind else encoder_id)
        self.encoder_factory = encoder_factory
        self._encoder: nn.Module | None = None

    def encoder(self) -> nn.Module:
        """The text encoder with its weights, built on first use."""
        if self._encoder is None:
            self._encoder = load_weights(self.encoder_factory(), self.encoder_checkpoint).eval()
        return self._encoder

    def __call__(self, terms: Sequence[str], modality: str) -> torch.Tensor:
        if self.cache.has(terms, modality):
            return self.cache.lookup(terms, modality)
        return self.cache.get(self.encoder(), terms, modality)
