"""The output-folder check every job runs before any model work."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from bundles.errors import BundleInputError
from bundles.io.atomic import folder_write_problem

__all__ = ["check_output_dir"]


def check_output_dir(output_dir: str | PathLike) -> None:
    """Refuse an output folder that cannot be created or written, before any model work.

    Raises:
        BundleInputError: naming the folder (or the file in its way).
    """
    problem = folder_write_problem(output_dir)
    if problem is not None:
        existing, what = problem
        path = Path(output_dir).resolve()
        raise BundleInputError(existing, f"{what}, so the output folder {path} cannot be created; choose another output folder")
