"""The release record that ties the weight files of one model release together.

Many models are several files that only work together: a SAT segmentation network with the text encoder it
was trained with (another encoder, e.g. a SAT-Pretrain file instead of the release's ``text_encoder.pth``,
loads without any error and then segments nothing: SAT issue #26), a SAMed LoRA file with its SAM base. A
converter writes ``models/release.json`` with the sha256 of every part; :func:`check_release` refuses any
other combination, and :func:`check_model_files` runs both checks before a job loads anything.

Record layout: ``{"release": ..., "<part>": {"file": ..., "sha256": ...}, ..., "written": ...}`` (one entry per
part, e.g. ``segmentation`` and ``text_encoder``), and optionally ``"sources"``: the input files the parts were
made from (e.g. a fine-tuned SAM base: its path and md5), recorded for the reader, not checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from typing import Any

from bundles.errors import CheckpointError
from bundles.io.atomic import atomic_write_json

__all__ = ["RELEASE_RECORD", "file_sha256", "file_digest", "write_release_record", "check_release", "check_model_files"]

#: File name of the record inside a bundle's ``models`` folder.
RELEASE_RECORD = "release.json"

_CHUNK = 1 << 20


def file_sha256(path: str | PathLike) -> str:
    """Hex sha256 of a file's bytes.

    Raises:
        CheckpointError: the file does not exist.
    """
    return file_digest(path, "sha256")


def file_digest(path: str | PathLike, algorithm: str) -> str:
    """Hex digest of a file's bytes with a ``hashlib`` algorithm ("sha256"; "md5" names the SAM releases).

    Raises:
        CheckpointError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    digest = hashlib.new(algorithm, usedforsecurity=False)
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


#: Record keys that are not parts.
_NOT_PARTS = ("release", "written", "sources")


def write_release_record(
    models_dir: str | PathLike,
    parts: Mapping[str, str | PathLike],
    release: str,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``<models_dir>/release.json`` naming every part's file, its sha256 and the release.

    Args:
        models_dir: the bundle's ``models`` folder.
        parts: part name -> converted file inside ``models_dir`` (absolute, or relative to it), e.g.
            ``{"segmentation": "model.pt", "text_encoder": "text_encoder.pt"}``.
        release: where the files come from, e.g. ``"SAT-Nano (HF zzh99/SAT Nano/nano.pth + text_encoder.pth)"``.
        sources: input name -> what identifies it (``{"sam_base": {"file": ..., "md5": ...}}``), stored as given.

    Returns:
        Path of the record (written atomically).

    Raises:
        CheckpointError: no parts, a part named ``release``/``written``/``sources``, a file missing or outside
            ``models_dir``.
    """
    models_dir = Path(models_dir)
    if not parts or set(parts) & set(_NOT_PARTS):
        raise CheckpointError(f"release record parts must be named files other than {'/'.join(_NOT_PARTS)}, got {list(parts)}")
    record: dict[str, Any] = {"release": release}
    record.update({name: _entry(models_dir, file) for name, file in parts.items()})
    if sources:
        record["sources"] = {name: dict(source) for name, source in sources.items()}
    record["written"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return atomic_write_json(models_dir / RELEASE_RECORD, record)


def check_release(models_dir: str | PathLike) -> dict[str, Any]:
    """Check every part of ``<models_dir>/release.json`` against its recorded sha256.

    Returns:
        The record (``release`` and one ``{"file", "sha256"}`` entry per part).

    Raises:
        CheckpointError: no or malformed record, a missing file, or a file whose sha256 differs (a file of
            another release mixed in); the message names the file.
    """
    models_dir = Path(models_dir)
    record_path = models_dir / RELEASE_RECORD
    if not record_path.is_file():
        raise CheckpointError(
            f"{record_path}: no release record, so the model's files cannot be checked to belong together; "
            "convert them with the bundle's converter (python -m bundles.<family>.convert), which writes it"
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        entries = {part: (v["file"], v["sha256"]) for part, v in record.items() if part not in _NOT_PARTS}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{record_path}: malformed release record ({e}); convert the checkpoints again") from e
    if not entries:
        raise CheckpointError(f"{record_path}: malformed release record (no parts); convert the checkpoints again")
    for part, (name, expected) in entries.items():
        path = models_dir / name
        if not path.is_file():
            raise CheckpointError(f"{path}: the {part} file named in {record_path} is missing")
        if file_sha256(path) != expected:
            others = ", ".join(p for p in entries if p != part) or "the other files"
            raise CheckpointError(
                f"{path}: this {part} file is not the one recorded for release {record.get('release')!r} in "
                f"{record_path}. Files of different releases load fine together and segment nothing; put back the "
                f"matching {part} for its {others}, or convert the new files so the record is rewritten"
            )
    return record


def check_model_files(files: Sequence[str | PathLike], model_dir: str | PathLike, how_to_get: str) -> None:
    """Before anything is loaded: list every missing weights file in one error, and refuse files from
    different releases (``release.json`` in ``model_dir``, written by the converters; absent for models
    trained here, whose files are written together).

    Args:
        files: the weight files the job will load.
        model_dir: their folder (where ``release.json`` is looked for).
        how_to_get: the family's way to get them, e.g. "convert the official weights with
            `python -m bundles.<family>.convert` (see README) or train them with configs/train.json".

    Raises:
        CheckpointError: naming all missing files (absolute paths) and how to get them, or a file of another release.
    """
    missing = [str(Path(f).absolute()) for f in files if not Path(f).is_file()]
    if missing:
        raise CheckpointError(f"missing model files: {', '.join(missing)}; {how_to_get}, or point --model_dir to the folder that holds them")
    if (Path(model_dir) / RELEASE_RECORD).is_file():
        check_release(model_dir)
