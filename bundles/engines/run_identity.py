"""What makes a training run itself: its settings, its data, the weights it started from, and the code.

A checkpoint folder is resumed only by the run it belongs to. The identity is a small JSON-able dict of
SHA-256 digests, stored in every checkpoint and beside every exported model (``training.json``), so
``runs/train`` reused with another data list or other pretrained weights is refused instead of silently
"resumed", and a model folder says what it holds.

Settings that do not change what is learned are left out, so they may differ on resume: the step budget
(``max_steps``: a finished run can be extended), logging/checkpoint intervals, device and AMP, tracking,
folders, and the paths of files whose *content* is part of the identity anyway (data list, weights).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any

import bundles
from bundles.checkpoints.release import file_sha256

__all__ = ["IGNORED_SETTINGS", "code_version", "identity_differences", "run_identity"]

#: Config ids that may change between a run and its resumption (see the module docstring).
IGNORED_SETTINGS = frozenset(
    {
        "max_steps", "checkpoint_every", "log_every", "progress", "device", "amp", "rank",
        "use_mlflow", "tracking_uri", "experiment_name", "run_name", "bundle_root", "dataset_dir", "model_dir",
        "ckpt_dir", "export_dir", "train_data", "pretrained_checkpoint", "pretrained_text_encoder",
        "resume", "reuse_finished", "initialize", "run", "finalize", "imports", "trainer",
    }
)

#: Human names of the identity's parts, for messages.
_PARTS = {"settings": "training settings", "data": "data list", "pretrained": "pretrained weights", "code": "code version"}


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@cache
def code_version() -> str:
    """``<package version>+<git commit>`` of the installed ``bundles`` package (the commit where it runs
    from a git checkout, else the version alone)."""
    root = Path(bundles.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{bundles.__version__}+{commit}" if commit else bundles.__version__


def _data_digest(data: str | PathLike | Mapping[str, Any]) -> str:
    if isinstance(data, Mapping):
        return _sha256_bytes(json.dumps(data, sort_keys=True, default=str).encode())
    path = Path(data)
    return file_sha256(path) if path.is_file() else _sha256_bytes(str(path).encode())


def run_identity(
    settings: Mapping[str, Any] | None,
    data: str | PathLike | Mapping[str, Any],
    pretrained: Sequence[str | PathLike] = (),
) -> dict[str, str]:
    """The identity of a training run: ``{"settings", "data", "pretrained", "code"}`` digests.

    Args:
        settings: the run's merged config (ids in :data:`IGNORED_SETTINGS` are dropped), or None.
        data: the training data list file (its bytes count) or an ``input_dict``.
        pretrained: weights files the run starts from (their bytes count; empty for a run from scratch).
    """
    kept = {k: v for k, v in (settings or {}).items() if k not in IGNORED_SETTINGS}
    weights = sorted(file_sha256(p) for p in pretrained)
    return {
        "settings": _sha256_bytes(json.dumps(kept, sort_keys=True, default=str).encode()),
        "data": _data_digest(data),
        "pretrained": _sha256_bytes(json.dumps(weights).encode()),
        "code": code_version(),
    }


def identity_differences(saved: Mapping[str, str] | None, current: Mapping[str, str]) -> list[str]:
    """Names of the parts in which two identities differ (all parts when ``saved`` is missing)."""
    if not saved:
        return ["identity (a checkpoint written before run identities existed)"]
    return [_PARTS.get(k, k) for k in current if saved.get(k) != current[k]]
