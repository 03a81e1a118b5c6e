"""Atomic file writes: a reader never sees a half-written output."""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["atomic_torch_save", "atomic_write", "atomic_write_json", "folder_write_problem"]


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


def atomic_torch_save(obj: Any, path: str | PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write`).

    The object is serialised through memory, so the archive's inner folder has torch's fixed name rather than
    the temporary file's: the same tensors always give a byte-identical file (comparable by checksum).
    """
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def folder_write_problem(folder: str | PathLike) -> tuple[Path, str] | None:
    """Why ``folder`` cannot be created or written, as ``(path in the way, "is a file" | "is not writable")``;
    None when it exists writable or can be created under its nearest existing parent."""
    folder = Path(folder).resolve()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return existing, "is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return existing, "is not writable"
    return None
