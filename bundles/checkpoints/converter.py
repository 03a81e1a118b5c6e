"""The shape every converter command shares: input files -> strict conversion -> atomic write -> printed summary.

Each family's ``bundles/<family>/convert.py`` converts in memory (strictly: every key used or dropped with a
reason), then calls :func:`save_converted`, and is run as ``python -m bundles.<family>.convert`` through
:func:`run_converter` (``fire`` over its commands, ``--help`` from their docstrings, one-line errors).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

import fire
from fire.core import FireExit

from bundles.checkpoints.release import file_sha256
from bundles.errors import BundleError, install_excepthook
from bundles.io.atomic import atomic_torch_save

__all__ = ["print_summary", "run_converter", "save_converted"]


def print_summary(summary: Mapping[str, Any]) -> None:
    """Print one ``name: value`` line per entry."""
    for name, value in summary.items():
        print(f"{name}: {value}")


def save_converted(
    obj: Any, output: str | PathLike, summary: Mapping[str, Any], source: str | PathLike | None = None
) -> dict[str, Any]:
    """``torch.save(obj)`` to ``output`` atomically (the output is complete or untouched), then print the summary.

    Args:
        obj: what to write (a state dict, or an official-layout container).
        output: the file to write (its folder is created).
        summary: what the conversion found (variant, key counts, ...), printed first.
        source: the input file, printed with its sha256 (omit when ``summary`` names the inputs).

    Returns:
        ``summary`` plus ``source``/``source_sha256`` (when given) and ``output``/``output_sha256``.

    Raises:
        CheckpointError: ``source`` does not exist.
    """
    path = atomic_torch_save(obj, output)
    full = dict(summary)
    if source is not None:
        full.update(source=str(source), source_sha256=file_sha256(source))
    full.update(output=str(path), output_sha256=file_sha256(path))
    print_summary(full)
    return full


def run_converter(commands: object, argv: Sequence[str] | None, name: str) -> int:
    """Run a converter's ``fire`` component on ``argv`` (None: the process's arguments); ``name`` (its module) heads the help.

    A :class:`~bundles.errors.BundleError` (wrong file, wrong variant, keys that do not fit) is printed as one
    line on stderr. The commands' return values (their summaries, already printed) are not printed again.

    Returns:
        The exit status: 0 done, 1 a refused input, fire's status for a usage error (2) or ``--help`` (0).
    """
    install_excepthook()
    try:
        fire.Fire(commands, command=None if argv is None else list(argv), name=name, serialize=lambda result: None)
    except FireExit as done:
        return int(done.code or 0)
    except BundleError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0
