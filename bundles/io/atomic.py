"""Atomic file writes: a reader never sees a half-written output."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_json"]


def atomic_write(path: str | PathLike, write_fn: Callable[[Path], Any]) -> Path:
    """Write ``path`` atomically: ``write_fn(tmp)`` writes a temporary file in the same folder, which then
    replaces ``path`` with ``os.replace``.

    The temporary name keeps the full file name as its ending (``.tmp-<hex>-seg.nii.gz``) so writers that
    choose the format from the suffix (nibabel, matplotlib) still work. On any exception the temporary file
    is removed and the exception propagates; ``path`` is left untouched. The parent folder is created.

    Returns:
        ``path`` as a :class:`Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        write_fn(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` atomically (see :func:`atomic_write`)."""
    text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
