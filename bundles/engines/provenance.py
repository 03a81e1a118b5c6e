"""What produced an output: model, weights (with checksums), config files and date.

Recorded in every case's ``legend.json``, the DICOM-SEG's algorithm identification and the evaluation
report, so a result found on disk months later still says which weights made it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from bundles.checkpoints.release import file_sha256
from bundles.engines.bundle_invocation import current_invocation

__all__ = ["model_provenance", "weights_id"]


def weights_id(provenance: dict[str, Any]) -> str:
    """A short id of the weights (first 12 hex digits of each file's SHA-256, joined), for DICOM-SEG."""
    return "+".join(entry["sha256"][:12] for entry in provenance.get("weights", []))


def model_provenance(model: str, weights: Sequence[str | PathLike]) -> dict[str, Any]:
    """``{"model", "weights": [{"path", "sha256"}], "configs", "date"}`` for the running bundle.

    Args:
        model: the model's name (``SAT-Nano``, ...).
        weights: the weights files the run loads (missing ones are listed without a checksum; the job's own
            checks report them).
    """
    invocation = current_invocation()
    entries = []
    for path in weights:
        path = Path(path).resolve()
        entries.append({"path": str(path), "sha256": file_sha256(path) if path.is_file() else ""})
    return {
        "model": model,
        "weights": entries,
        "configs": list(invocation.config_files) if invocation else [],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
