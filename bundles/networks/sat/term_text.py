"""The one spelling of a text prompt that SAT's text encoders embed and its vocabulary matches.

SAT feeds the bare label name, lower-cased, to its text tower (SAT ``inference.py``); cached queries and the
vocabulary key terms by the same text, so ``" Left  Kidney"`` and ``"left kidney"`` are one query.
"""

from __future__ import annotations

import re

from bundles.errors import PromptError

__all__ = ["normalize_term"]

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
