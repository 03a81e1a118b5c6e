"""The SAT label vocabulary and strict matching of user text prompts against it.

The vocabulary is SAT-DS ``data/terminology_list.json`` (packaged as ``data/sat_terminology_list.json``):
498 ``"<modality>_<name>"`` entries (ct 306, mri 189, pet 3), grouped by modality, body region, dataset,
plus the 24 lesion classes under ``abnormal``. The prompt text is the name after the modality prefix,
lower-cased (SAT ``inference.py``; see official SAT model/maskformer.py, SAT-DS terminology_list.json).

Matching never guesses: a prompt is a term of the requested modality, an alias of one (a TotalSegmentator
class name, an abbreviation), or the same words as exactly one term in another order or with anatomical
synonyms read (``data/anatomical_synonyms.json``: ``hepatic tumor`` is ``liver tumor``, ``vena_cava_inferior``
is ``inferior vena cava``). Anything else is a :class:`~bundles.errors.PromptError` with the closest terms
(synonyms read there too) and the ``medseg vocabulary`` command that lists them, before any model work.
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

from bundles.data.totalsegmentator_names import totalsegmentator_classes
from bundles.errors import ConfigurationError, PromptError
from bundles.io.modality import MODALITIES, normalize_modality
from bundles.networks.sat.term_text import normalize_term

__all__ = [
    "LESION_REGION",
    "SATVocabulary",
    "load_sat_vocabulary",
]

logger = logging.getLogger(__name__)

#: Region reported by :meth:`SATVocabulary.region_of` for the ``abnormal`` classes (the paper's lesion group).
LESION_REGION = "lesion"

_MAX_SUGGESTIONS = 5
_WORD_BREAK = re.compile(r"[\s_]+")
#: Words too common to point ``medseg vocabulary --search`` at.
_UNSEARCHABLE = frozenset({"left", "right", "and", "of", "the"})


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
        self._meanings: dict[str, dict[str, str]] = {m: {} for m in MODALITIES}
        self._synonyms: dict[str, str] = {}
        self._index()

    def add_aliases(self, modality: str, aliases: Mapping[str, str]) -> None:
        """Accept other names for vocabulary terms of ``modality``.

        An alias of a term ``modality`` lacks (a TotalSegmentator class SAT has no class for) is not accepted;
        a prompt of it is told what it means and that SAT lacks it.
        """
        modality = normalize_modality(modality)
        for alias, term in aliases.items():
            table = self._aliases if term in self._sets[modality] else self._meanings
            table[modality][normalize_term(alias)] = term
        self._index()

    def add_synonyms(self, synonyms: Mapping[str, str]) -> None:
        """Read word ``w`` as ``synonyms[w]`` in prompts and terms alike when matching (``hepatic`` -> ``liver``)."""
        self._synonyms.update({normalize_term(word): normalize_term(same) for word, same in synonyms.items()})
        self._index()

    def _words(self, text: str) -> list[str]:
        """The words of ``text`` (split at spaces and ``_``) with synonyms read: ``hepatic_tumor`` -> ``[liver, tumor]``."""
        return [part for word in _WORD_BREAK.split(text) if word for part in self._synonyms.get(word, word).split(" ")]

    def _word_key(self, text: str) -> tuple[str, ...]:
        """The words of ``text`` with synonyms read, in any order: ``vena_cava_inferior`` -> ``(cava, inferior, vein)``."""
        return tuple(sorted(self._words(text)))

    def _index(self) -> None:
        """Index terms and aliases by their words in any order, and terms by their spelling with synonyms read."""
        self._by_words: dict[str, dict[tuple[str, ...], set[str]]] = {m: {} for m in MODALITIES}
        self._meaning_by_words: dict[str, dict[tuple[str, ...], str]] = {m: {} for m in MODALITIES}
        self._by_spelling: dict[str, dict[str, str]] = {m: {} for m in MODALITIES}
        for modality in MODALITIES:
            named = [(name, name) for name in self._names[modality]] + list(self._aliases[modality].items())
            for text, term in named:
                self._by_words[modality].setdefault(self._word_key(text), set()).add(term)
            for alias, term in self._meanings[modality].items():
                self._meaning_by_words[modality][self._word_key(alias)] = term
            for name in self._names[modality]:
                self._by_spelling[modality].setdefault(" ".join(self._words(name)), name)

    def resolve(self, text: str, modality: str) -> str | None:
        """The vocabulary term a normalised ``text`` names, or None: itself, the term of an alias, or the one
        term (or alias) with the same words in any order once synonyms are read."""
        if text in self._sets[modality]:
            return text
        if text in self._aliases[modality]:
            return self._aliases[modality][text]
        found = self._by_words[modality].get(self._word_key(text), set())
        return next(iter(found)) if len(found) == 1 else None

    def suggestions(self, text: str, modality: str, n: int = _MAX_SUGGESTIONS) -> list[str]:
        """Up to ``n`` terms of ``modality`` closest to a normalised ``text``, best first: the terms with its
        words in any order, the shortest terms holding all its words, close spellings with synonyms read, close
        spellings as typed (synonyms read: ``hepatic tumors`` -> ``liver tumor``; ``heart`` -> ``heart atrium``)."""
        modality = normalize_modality(modality)
        words = self._words(text)
        same = sorted(self._by_words[modality].get(self._word_key(text), set()))
        spelled = self._by_spelling[modality]
        holding = sorted((name for spelling, name in spelled.items() if set(words) <= set(spelling.split(" "))),
                         key=lambda name: len(name.split(" ")))
        close = [spelled[s] for s in difflib.get_close_matches(" ".join(words), list(spelled), n=n, cutoff=0.6)]
        typed = difflib.get_close_matches(text, self._names[modality], n=n, cutoff=0.6)
        return list(dict.fromkeys(same + holding[:n] + close + typed))[:n]

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
                such as ``kidney_left``, abbreviations such as ``IVC``), the words of one term in another order
                (``vena_cava_inferior``) or with synonyms (``hepatic tumor``) are replaced by their SAT term.
            modality: see :func:`normalize_modality`.
            allow_free_text: let unknown terms through (a logged warning each) for encoders that can embed
                any text; the released SAT models only know the vocabulary.

        Returns:
            The normalised terms in input order, duplicates removed (a logged warning).

        Raises:
            PromptError: ``terms`` is empty or a bare string; a term is empty, unknown for this modality
                (message names the term, what an alias of it means, the modality, up to 5 close terms, other
                modalities that know it, and the ``medseg vocabulary`` command where no term is close), or two
                valid terms glued together (a missing comma).
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
        others = [m for m in MODALITIES if m != modality and self.resolve(text, m) is not None]
        elsewhere = f" (it exists only for {', '.join(others)}: check the modality)" if others else ""
        meaning = self._meanings[modality].get(text) or self._meaning_by_words[modality].get(self._word_key(text))
        if meaning is None:
            message = f"text prompt {text!r} is not in the SAT vocabulary for {modality}{elsewhere}"
            close = self.suggestions(text, modality)
            if close:
                return message + f"; did you mean: {', '.join(repr(c) for c in close)}?"
            return message + f"; {self._listing_hint(text, modality)}"
        named = "" if meaning == " ".join(self._words(text)) else f" ({meaning})"
        message = f"text prompt {text!r}{named}: SAT has no such class for {modality}{elsewhere}"
        words = set(self._words(meaning)) - _UNSEARCHABLE
        close = [term for term in self.suggestions(meaning, modality) if words & set(self._words(term))]
        if close:
            message += f"; closest: {', '.join(repr(c) for c in close)}"
        return message + f"; {self._listing_hint(meaning, modality, close)}"

    def _listing_hint(self, text: str, modality: str, close: Sequence[str] = ()) -> str:
        """Where to see the terms: ``medseg vocabulary``, searching for a word of ``text`` (synonyms read) that
        is a word of some term of ``modality``: one of the closest term ``close[0]`` first, then the longest."""
        names = self._names[modality]
        nearest = set(close[0].split(" ")) if close else set()
        words = [w for w in self._words(text) if w not in _UNSEARCHABLE and re.fullmatch(r"[a-z][a-z0-9-]+", w)]
        found = sorted((w for w in words if any(w in name.split(" ") for name in names)), key=lambda w: (w in nearest, len(w)), reverse=True)
        command = f"medseg vocabulary --modality {modality}"
        if found:
            return f"list the {modality} terms holding {found[0]!r} with `{command} --search {found[0]}`"
        return f"list its {len(names)} {modality} terms with `{command}`"

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


def _packaged_table(name: str) -> dict[str, str]:
    """A packaged ``data/`` JSON table without its ``_``-prefixed notes."""
    table = json.loads(resources.files("bundles.sat").joinpath(f"data/{name}").read_text(encoding="utf-8"))
    return {key: value for key, value in table.items() if not key.startswith("_")}


@lru_cache(maxsize=1)
def load_sat_vocabulary() -> SATVocabulary:
    """The packaged SAT vocabulary (read once per process): TotalSegmentator v1/v2/MR class names and common
    abbreviations (``data/abbreviations.json``) accepted as aliases, anatomical synonyms
    (``data/anatomical_synonyms.json``) read when matching."""
    resource = resources.files("bundles.sat").joinpath("data/sat_terminology_list.json")
    with resources.as_file(resource) as path:
        vocabulary = SATVocabulary.from_file(path)
    vocabulary.add_synonyms(_packaged_table("anatomical_synonyms.json"))
    aliases = {**totalsegmentator_classes(), **_packaged_table("abbreviations.json")}
    for modality in MODALITIES:
        vocabulary.add_aliases(modality, aliases)
    return vocabulary
