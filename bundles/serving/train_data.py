"""How ``/train`` hands the datastore's labelled cases to a bundle's ``train.json``: the default hook.

A bundle's ``train.json`` names its hook as the config id ``serving_train_data`` (``_mode_: callable``), the
way MONAI's ``bundle/properties.py`` names the ids a workflow needs. A hook takes the cases
(``[{"id", "image", "mask", "legend", "modality"}]``, the mask a label map on the image's grid, ``legend`` its
value -> name) and the run's folder, writes them in the form the bundle trains from, and returns the value of
the config id ``train_data``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bundles.io.atomic import atomic_write

__all__ = ["case_list"]


def case_list(cases: Sequence[Mapping[str, Any]], run_dir: str | Path) -> str:
    """The cases as a case list ``<run_dir>/train.jsonl`` (one JSON object a line): what SAT, SAM-Med3D and
    SAMed train from. Returns its path."""
    path = Path(run_dir) / "train.jsonl"
    text = "".join(json.dumps(dict(case)) + "\n" for case in cases)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return str(path)
