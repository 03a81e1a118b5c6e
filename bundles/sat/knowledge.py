"""Text pairs for knowledge pretraining, read from a terminology/definition JSON-lines file.

Each line describes one term::

    {"term": "liver", "definition": "...", "synonyms": ["hepar"], "relations": [["part of", "abdomen"]]}

and gives the positive pairs of SAT-Pretrain's text-text stage (official SAT-Pretrain): (term, definition),
(term, synonym) for each synonym, and ("term relation", other term) for each relation. Pairs of the same
term are positives of each other in a batch (their ``key`` is the normalised term).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from bundles.errors import BundleInputError, PromptError
from bundles.networks.sat.term_text import normalize_term

__all__ = ["KnowledgePair", "read_knowledge_pairs"]


@dataclass(frozen=True)
class KnowledgePair:
    """One positive text pair; ``key`` groups the pairs that describe the same term."""

    anchor: str
    positive: str
    key: str


def _text(value: object, what: str) -> str:
    try:
        return normalize_term(value)
    except PromptError as e:
        raise ValueError(f"{what}: {e}") from e


def _pairs_of(entry: object) -> list[KnowledgePair]:
    if not isinstance(entry, dict) or "term" not in entry:
        raise ValueError('expected an object with at least "term"')
    unknown = set(entry) - {"term", "definition", "synonyms", "relations"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}; allowed: term, definition, synonyms, relations")
    term = _text(entry["term"], "term")
    pairs = []
    if entry.get("definition") is not None:
        pairs.append(KnowledgePair(term, _text(entry["definition"], "definition"), term))
    synonyms = entry.get("synonyms", [])
    if not isinstance(synonyms, list):
        raise ValueError('"synonyms" must be a list of strings')
    pairs += [KnowledgePair(term, _text(s, "synonym"), term) for s in synonyms]
    relations = entry.get("relations", [])
    if not isinstance(relations, list) or not all(isinstance(r, list) and len(r) == 2 for r in relations):
        raise ValueError('"relations" must be a list of [relation, other term] pairs')
    pairs += [KnowledgePair(f"{term} {_text(r, 'relation')}", _text(other, "related term"), term) for r, other in relations]
    if not pairs:
        raise ValueError(f"term {term!r} has no definition, synonym or relation, so it gives no training pair")
    return pairs


def read_knowledge_pairs(path: str | PathLike) -> list[KnowledgePair]:
    """All positive pairs of a knowledge JSON-lines file, in file order (blank lines skipped).

    Raises:
        BundleInputError: the file is missing or empty, or a line is not valid JSON / lacks a term / has a
            malformed field (the message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise BundleInputError(path, "knowledge file not found")
    pairs: list[KnowledgePair] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pairs += _pairs_of(json.loads(line))
        except (json.JSONDecodeError, ValueError) as e:
            raise BundleInputError(path, f"line {number}: {e}") from e
    if not pairs:
        raise BundleInputError(path, "no knowledge entries in the file")
    return pairs
