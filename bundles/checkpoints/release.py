"""The release record that ties a SAT segmentation checkpoint to its text encoder.

A SAT segmentation network only works with the text encoder it was trained with: another encoder (for
example a SAT-Pretrain file instead of the release's ``text_encoder.pth``) loads without any error and then
segments nothing (SAT issue #26, official SAT issues). ``models/release.json`` records the sha256 of
both converted files; :func:`check_release_pair` refuses any other combination.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from typing import Any

from bundles.errors import CheckpointError
from bundles.io.atomic import atomic_write_json

__all__ = ["RELEASE_RECORD", "file_sha256", "write_release_record", "check_release_pair"]

#: File name of the record inside a bundle's ``models`` folder.
RELEASE_RECORD = "release.json"

_CHUNK = 1 << 20


def file_sha256(path: str | PathLike) -> str:
    """Hex sha256 of a file's bytes.

    Raises:
        CheckpointError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(models_dir: Path, file: str | PathLike) -> dict[str, str]:
    path = Path(file)
    path = path if path.is_absolute() else models_dir / path
    try:
        name = str(path.resolve().relative_to(models_dir.resolve()))
    except ValueError as e:
        raise CheckpointError(f"{path}: must lie inside {models_dir} so the bundle can find it") from e
    return {"file": name, "sha256": file_sha256(path)}


def write_release_record(
    models_dir: str | PathLike, segmentation_file: str | PathLike, text_encoder_file: str | PathLike, release: str
) -> Path:
    """Write ``<models_dir>/release.json`` naming both converted files, their sha256 and the release.

    Args:
        models_dir: the bundle's ``models`` folder.
        segmentation_file, text_encoder_file: converted checkpoints inside ``models_dir`` (absolute, or
            relative to it).
        release: where the pair comes from, e.g. ``"SAT-Nano (HF zzh99/SAT Nano/nano.pth + text_encoder.pth)"``.

    Returns:
        Path of the record (written atomically).

    Raises:
        CheckpointError: a file is missing or outside ``models_dir``.
    """
    models_dir = Path(models_dir)
    record: dict[str, Any] = {
        "release": release,
        "segmentation": _entry(models_dir, segmentation_file),
        "text_encoder": _entry(models_dir, text_encoder_file),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return atomic_write_json(models_dir / RELEASE_RECORD, record)


def check_release_pair(models_dir: str | PathLike) -> dict[str, Any]:
    """Check both files of ``<models_dir>/release.json`` against their recorded sha256.

    Returns:
        The record (``release``, ``segmentation``/``text_encoder`` with ``file`` and ``sha256``).

    Raises:
        CheckpointError: no or malformed record, a missing file, or a file whose sha256 differs (a segmentation
            checkpoint paired with another release's text encoder); the message names the file.
    """
    models_dir = Path(models_dir)
    record_path = models_dir / RELEASE_RECORD
    if not record_path.is_file():
        raise CheckpointError(
            f"{record_path}: no release record, so the segmentation checkpoint and the text encoder cannot be "
            "checked to belong together; convert both with the tools converter, which writes it"
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        entries = {part: (record[part]["file"], record[part]["sha256"]) for part in ("segmentation", "text_encoder")}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{record_path}: malformed release record ({e}); convert the checkpoints again") from e
    for part, (name, expected) in entries.items():
        path = models_dir / name
        if not path.is_file():
            raise CheckpointError(f"{path}: the {part} checkpoint named in {record_path} is missing")
        if file_sha256(path) != expected:
            raise CheckpointError(
                f"{path}: this {part} checkpoint is not the one recorded for release {record.get('release')!r} in "
                f"{record_path}. A segmentation checkpoint with another release's text encoder loads fine and "
                "segments nothing; put back the matching pair, or convert the new pair so the record is rewritten"
            )
    return record
