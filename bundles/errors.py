"""The exception hierarchy every bundle raises for problems the user can fix.

Each error names the offending file (or prompt, or checkpoint) and says what is wrong and what to do.
``install_excepthook`` makes ``python -m monai.bundle run`` print such an error as one line on stderr
(no traceback) and exit with status 1. An unexpected error (a bug, a broken environment) is also one line:
what failed and the file the full traceback was written to; a missing package is named with the pip
command that installs it.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
import traceback
from os import PathLike
from pathlib import Path
from types import TracebackType

__all__ = [
    "BundleError",
    "BundleInputError",
    "PromptError",
    "CheckpointError",
    "ConfigurationError",
    "MissingPackageError",
    "find_bundle_error",
    "install_excepthook",
    "require_package",
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


class MissingPackageError(BundleError, ImportError):
    """A Python package that a requested step needs is not installed (names the pip command).

    Args:
        package: the pip name (``scikit-image``), not the module name (``skimage``).
        purpose: the step that needs it.
    """

    def __init__(self, package: str, purpose: str):
        self.package = package
        super().__init__(f"{purpose} needs the package {package}, which is not installed: pip install {package}")


def require_package(module: str, package: str, purpose: str) -> None:
    """Raise :class:`MissingPackageError` now, before any work, if ``module`` cannot be imported.

    For steps whose library is imported lazily (MONAI's ``optional_import``), which would otherwise fail
    only after inference has run.
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingPackageError(package, purpose)


#: pip names of the modules whose import name differs from the package name (modules MONAI imports lazily).
_PIP_NAMES = {"skimage": "scikit-image", "cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml",
              "sklearn": "scikit-learn", "itk": "itk-io", "nrrd": "pynrrd"}


def _missing_module(exc: BaseException | None) -> str | None:
    """The module a failed import (or MONAI's ``optional_import``/"X required" error) was looking for."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name.split(".")[0]
        match = re.search(r"No module named '([A-Za-z0-9_]+)", str(exc)) or re.match(r"(Skimage)\.\w+ required", str(exc))
        if match:
            return match.group(1).replace("Skimage", "skimage")
        exc = exc.__cause__ or exc.__context__
    return None


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


_LOG_DIR: Path | None = None


def _write_traceback(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> Path:
    """Write the full traceback to ``<log dir>/error.log`` (the temp folder if that is not writable)."""
    text = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}\n" + "".join(traceback.format_exception(exc_type, exc, tb))
    for folder in ([_LOG_DIR] if _LOG_DIR is not None else []) + [Path(tempfile.gettempdir())]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / ("error.log" if folder == _LOG_DIR else f"medseg-error-{time.strftime('%Y%m%d-%H%M%S')}.log")
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("<nowhere: no writable folder>")


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.flush()
    if isinstance(exc, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr, flush=True)
        return
    error = find_bundle_error(exc)
    if error is None and (module := _missing_module(exc)) is not None:
        package = _PIP_NAMES.get(module, module)
        log = _write_traceback(exc_type, exc, tb)
        print(f"error: the package {package} is not installed: pip install {package} (traceback: {log})", file=sys.stderr, flush=True)
        return
    if error is None:
        log = _write_traceback(exc_type, exc, tb)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"error: unexpected {exc_type.__name__}: {first} (full traceback in {log}; please report it)", file=sys.stderr, flush=True)
        return
    print(f"error: {type(error).__name__}: {error}", file=sys.stderr, flush=True)


def install_excepthook(log_dir: str | PathLike | None = None) -> None:
    """Print every error that ends a command as one line on stderr; the exit status stays 1.

    A :class:`BundleError` prints as ``error: <Type>: <file>: <problem>``. Any other exception prints
    ``error: unexpected <Type>: <message> (full traceback in <log_dir>/error.log ...)``, and a missing package
    as the pip command that installs it; their full traceback goes to ``<log_dir>/error.log`` (the bundle's
    output or checkpoint folder) or, without one, a file in the temporary folder. Call it once at the start
    of a command (the bundle configs do so in ``initialize``); calling it again replaces ``log_dir``.
    """
    global _LOG_DIR
    _LOG_DIR = None if log_dir is None else Path(log_dir)
    sys.excepthook = _excepthook
