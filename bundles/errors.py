"""The exception hierarchy every bundle raises for problems the user can fix.

Each error names the offending file (or prompt, or checkpoint) and says what is wrong and what to do.
``install_excepthook`` makes ``python -m monai.bundle run`` print such an error as one line on stderr
(no traceback) and exit with status 1; unexpected errors keep their full traceback.
"""

from __future__ import annotations

import sys
from os import PathLike
from types import TracebackType

__all__ = [
    "BundleError",
    "BundleInputError",
    "PromptError",
    "CheckpointError",
    "ConfigurationError",
    "find_bundle_error",
    "install_excepthook",
]


class BundleError(Exception):
    """Base class of all errors caused by user input, files or configuration."""


class BundleInputError(BundleError, ValueError):
    """An input image (or reference mask) that cannot be used.

    Args:
        path: the file or folder the problem was found in.
        problem: what is wrong and, where possible, what to do about it.
    """

    def __init__(self, path: str | PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class PromptError(BundleError, ValueError):
    """A text prompt, click or box that the model cannot take (unknown term, empty click list, ...)."""


class CheckpointError(BundleError):
    """A checkpoint file that is missing, unreadable, or does not fit the network (names the keys)."""


class ConfigurationError(BundleError, ValueError):
    """An inconsistent bundle configuration (unknown modality, impossible crop size, ...)."""


def find_bundle_error(exc: BaseException | None) -> BundleError | None:
    """Return the first :class:`BundleError` in ``exc``'s ``__cause__``/``__context__`` chain, if any.

    MONAI's config parser wraps exceptions raised inside ``$`` expressions in a ``RuntimeError``; the
    original error is kept as the cause.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, BundleError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    error = find_bundle_error(exc)
    if error is None:
        sys.__excepthook__(exc_type, exc, tb)
        return
    sys.stderr.flush()
    print(f"error: {type(error).__name__}: {error}", file=sys.stderr, flush=True)


def install_excepthook() -> None:
    """Print :class:`BundleError` as a single ``error: <Type>: <file>: <problem>`` line, not a traceback.

    The interpreter still exits with status 1. Call it once at the start of a command (the bundle configs
    do so in ``initialize``); it is idempotent.
    """
    sys.excepthook = _excepthook
