"""The SAT label vocabulary and strict matching of user text prompts against it.

The vocabulary is SAT-DS ``data/terminology_list.json`` (packaged as ``data/sat_terminology_list.json``):
498 ``"<modality>_<name>"`` entries (ct 306, mri 189, pet 3), grouped by modality, body region, dataset,
plus the 24 lesion classes under ``abnormal``. The prompt text is the name after the modality prefix,
lower-cased (SAT ``inference.py``; see official SAT model/maskformer.py, SAT-DS terminology_list.json).

Matching never guesses: a term that is not in the vocabulary of the requested modality is a
:class:`~bundles.errors.PromptError` with "did you mean" suggestions, before any model work.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from os import PathLike
from pathlib import Path

from bundles.data.totalsegmentator_names import totalsegmentator_terms
from bundles.errors import ConfigurationError, PromptError
from bundles.io.modality import MODALITIES, normalize_modality

__all__ = [
    "LESION_REGION",
    "SATVocabulary",
    "normalize_term",
    "load_sat_vocabulary",
]

logger = logging.getLogger(__name__)

#: Region reported by :meth:`SATVocabulary.region_of` for the ``abnormal`` classes (the paper's lesion group).
LESION_REGION = "lesion"

_MAX_SUGGESTIONS = 5
_WHITESPACE = re.compile(r"\s+")


def normalize_term(term: str) -> str:
    """Lower-case ``term``, strip it and collapse inner whitespace to single spaces.

    Raises:
        PromptError: ``term`` is not a string or is empty after stripping.
    """
    if not isinstance(term, str):
        raise PromptError(f"a text prompt must be a string, got {type(term).__name__} {term!r}")
    text = _WHITESPACE.sub(" ", term.strip().lower())
    if not text:
        raise PromptError("an empty text prompt was given; remove it or name a structure")
    return text


class SATVocabulary:
    """The SAT terminology list, indexed by modality and region.

    Args:
        table: the parsed terminology JSON (keys ``all``, ``region_based``, ``abnormal``; ``modality_based``
            and ``dataset_based`` are optional).
        source: where the table came from, used in error messages.

    Raises:
        ConfigurationError: the table lacks a required key or holds a malformed entry.
    """

    def __init__(self, table: Mapping[str, object], source: str = "SAT vocabulary"):
        self.source = source
        self._names: dict[str, list[str]] = {m: [] for m in MODALITIES}
        self._region: dict[str, str] = {}
        for key in ("all", "region_based", "abnormal"):
            if key not in table:
                raise ConfigurationError(f"{source}: missing key {key!r}; is this SAT-DS terminology_list.json?")
        for entry in table["all"]:
            modality, name = self._split(entry)
            self._names[modality].append(name)
        for region, entries in dict(table["region_based"]).items():
            for entry in entries:
                self._region[entry] = str(region)
        for entry in table["abnormal"]:
            self._split(entry)
            self._region[entry] = LESION_REGION
        self._sets = {m: frozenset(names) for m, names in self._names.items()}
        self._aliases: dict[str, dict[str, str]] = {m: {} for m in MODALITIES}

    def add_aliases(self, modality: str, aliases: Mapping[str, str]) -> None:
        """Accept other names for vocabulary terms of ``modality`` (aliases of absent terms are ignored)."""
        modality = normalize_modality(modality)
        for alias, term in aliases.items():
            if term in self._sets[modality]:
                self._aliases[modality][normalize_term(alias)] = term

    def resolve(self, text: str, modality: str) -> str | None:
        """The vocabulary term for a normalised ``text`` (itself, or the term an alias names), or None."""
        if text in self._sets[modality]:
            return text
        aliases = self._aliases[modality]
        return aliases.get(text) or aliases.get(text.replace(" ", "_"))

    def _split(self, entry: object) -> tuple[str, str]:
        if not isinstance(entry, str) or "_" not in entry or entry.split("_", 1)[0] not in MODALITIES:
            raise ConfigurationError(f"{self.source}: malformed entry {entry!r}; expected '<modality>_<name>'")
        modality, name = entry.split("_", 1)
        return modality, name

    @classmethod
    def from_file(cls, path: str | PathLike) -> SATVocabulary:
        """Read a terminology JSON file.

        Raises:
            ConfigurationError: the file is missing, not JSON, or not a SAT terminology list.
        """
        path = Path(path)
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigurationError(f"{path}: cannot read the vocabulary file ({e})") from e
        if not isinstance(table, dict):
            raise ConfigurationError(f"{path}: expected a JSON object, got {type(table).__name__}")
        return cls(table, source=str(path))

    def terms(self, modality: str) -> list[str]:
        """The prompt names valid for ``modality`` (file order); ``[]`` for ultrasound."""
        return list(self._names[normalize_modality(modality)])

    def modalities_of(self, term: str) -> list[str]:
        """The modalities whose vocabulary holds ``term`` (normalised first)."""
        text = normalize_term(term)
        return [m for m in MODALITIES if text in self._sets[m]]

    def __len__(self) -> int:
        return sum(len(v) for v in self._names.values())

    def match(self, terms: Sequence[str], modality: str, *, allow_free_text: bool = False) -> list[str]:
        """Normalise ``terms`` and check each against the vocabulary of ``modality``.

        Args:
            terms: user prompts, e.g. ``["Liver", " left  kidney"]``; aliases (TotalSegmentator class names
                such as ``kidney_left``, abbreviations such as ``IVC``) are replaced by their SAT term.
            modality: see :func:`normalize_modality`.
            allow_free_text: let unknown terms through (a logged warning each) for encoders that can embed
                any text; the released SAT models only know the vocabulary.

        Returns:
            The normalised terms in input order, duplicates removed (a logged warning).

        Raises:
            PromptError: ``terms`` is empty or a bare string; a term is empty, unknown for this modality
                (message names the term, the modality, up to 5 close terms, and other modalities that know
                it), or two valid terms glued together (a missing comma).
        """
        modality = normalize_modality(modality)
        if isinstance(terms, str):
            raise PromptError(f"text prompts must be a list of terms, got the string {terms!r}; use [{terms!r}]")
        if not terms:
            raise PromptError("no text prompt given; pass at least one term, e.g. ['liver']")
        if not self._sets[modality] and not allow_free_text:
            known = ", ".join(m for m in MODALITIES if self._sets.get(m))
            raise PromptError(f"the SAT vocabulary has no terms for modality {modality!r} (it has terms for {known})")
        matched: list[str] = []
        for term in terms:
            text = normalize_term(term)
            resolved = self.resolve(text, modality)
            if resolved is not None and resolved != text:
                logger.info("text prompt %r read as the SAT term %r", text, resolved)
                text = resolved
            if text in matched:
                logger.warning("text prompt %r is given more than once; segmenting it once", text)
                continue
            if resolved is None:
                if not allow_free_text:
                    raise PromptError(self._unknown_message(text, modality))
                logger.warning("text prompt %r is not in the SAT vocabulary for %s; using it as free text", text, modality)
            matched.append(text)
        return matched

    def _unknown_message(self, text: str, modality: str) -> str:
        glued = self._segment(text, modality)
        if glued is not None:
            parts = ", ".join(repr(p) for p in glued)
            return (
                f"text prompt {text!r} looks like {len(glued)} terms glued together ({parts}); a comma is probably "
                f"missing in the prompt list: pass them as separate terms"
            )
        message = f"text prompt {text!r} is not in the SAT vocabulary for {modality}"
        others = [m for m in MODALITIES if m != modality and text in self._sets[m]]
        if others:
            message += f" (it exists only for {', '.join(others)}: check the modality)"
        close = difflib.get_close_matches(text, self._names[modality], n=_MAX_SUGGESTIONS, cutoff=0.6)
        if close:
            message += f"; did you mean: {', '.join(repr(c) for c in close)}?"
        elif self._names[modality]:
            message += (f"; it has {len(self._names[modality])} {modality} terms, listed by SATVocabulary.terms({modality!r}) (or a MONAI Label"
                        " server's /info labels)")
        return message

    def _segment(self, text: str, modality: str) -> list[str] | None:
        """Split ``text`` into >= 2 valid terms of ``modality`` (with or without spaces between), or None."""
        valid = self._sets[modality]
        best: list[list[str] | None] = [None] * (len(text) + 1)
        best[len(text)] = []
        for start in range(len(text) - 1, -1, -1):
            for end in range(start + 1, len(text) + 1):
                piece = text[start:end].strip()
                rest = best[end]
                if piece in valid and rest is not None:
                    best[start] = [piece, *rest]
                    break
        parts = best[0]
        return parts if parts is not None and len(parts) >= 2 else None

    def region_of(self, term: str, modality: str) -> str:
        """The body region of a vocabulary term, ``"lesion"`` for the ``abnormal`` classes.

        Regions are the ``region_based`` groups of the terminology file (brain, head and neck, upper limb,
        thorax, spine, abdomen, lower limb, pelvis, whole body); lesion classes are reported as
        :data:`LESION_REGION` first, whatever their anatomical group.

        Raises:
            PromptError: the term is not in the vocabulary of ``modality``.
        """
        modality = normalize_modality(modality)
        text = normalize_term(term)
        key = f"{modality}_{text}"
        if key not in self._region:
            raise PromptError(self._unknown_message(text, modality))
        return self._region[key]


def _packaged_json(name: str) -> dict:
    resource = resources.files("bundles.sat").joinpath(f"data/{name}")
    return json.loads(resource.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def load_sat_vocabulary() -> SATVocabulary:
    """The packaged SAT vocabulary (read once per process), with TotalSegmentator class names and common
    abbreviations (``data/abbreviations.json``) accepted as aliases."""
    resource = resources.files("bundles.sat").joinpath("data/sat_terminology_list.json")
    with resources.as_file(resource) as path:
        vocabulary = SATVocabulary.from_file(path)
    abbreviations = {k: v for k, v in _packaged_json("abbreviations.json").items() if not k.startswith("_")}
    for modality in MODALITIES:
        vocabulary.add_aliases(modality, {**totalsegmentator_terms(modality), **abbreviations})
    return vocabulary
