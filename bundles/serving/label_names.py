"""The names of a saved label's values, as MONAI Label clients send them with ``PUT /datastore/label``.

3D Slicer's plugin sends ``label_info``: ``[{"name": "liver", "idx": 1}, ...]``; this app's answers and OHIF
carry ``label_names``: ``{"liver": 1, ...}`` (at the top level or under ``params``). Anything else is not a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["legend_of"]


def legend_of(info: Mapping[str, Any]) -> dict[str, str]:
    """Label value (as text, ``"1"``) -> name from a label's info; ``{}`` when it names none.

    Values must be integers > 0 and names non-empty strings; other entries are dropped.
    """
    pairs: list[tuple[Any, Any]] = []
    params = info.get("params")
    names = info.get("label_names") or (params.get("label_names") if isinstance(params, Mapping) else None)
    if isinstance(names, Mapping):
        pairs = [(value, name) for name, value in names.items()]
    elif isinstance(info.get("label_info"), list):
        pairs = [(item.get("idx"), item.get("name")) for item in info["label_info"] if isinstance(item, Mapping)]
    return {str(v): n for v, n in pairs if isinstance(v, int) and not isinstance(v, bool) and v > 0 and isinstance(n, str) and n}
