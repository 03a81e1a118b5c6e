"""Summary statistics of per-case metric rows: kinds of rows and per-group mean / std / median.

Input rows are the dicts of :func:`bundles.metrics.segmentation.evaluate_case` (``case``, ``class``,
``dice``, ``iou``, ``nsd``, ``hd95`` in mm, the voxel counts ``pred_voxels`` / ``ref_voxels``, ``nsd_tolerance_mm``,
plus any extra columns). Under that module's empty-mask convention every metric is a finite number; rows
with a missing or non-finite metric, or without voxel counts, are refused rather than silently dropped.

Kinds of rows, told apart by the voxel counts:

===================  =====================================  ==========================================
kind                 masks                                  HD95 in ``metrics.csv`` (by convention)
===================  =====================================  ==========================================
real                 both non-empty                         measured
absent               both empty (correctly absent)          0 mm
missed               reference non-empty, prediction empty  diagonal of the image extent (mm)
false positive       reference empty, prediction non-empty  diagonal of the image extent (mm)
===================  =====================================  ==========================================

Statistics per group: arithmetic mean, population standard deviation (``ddof=0``, so a group of one has
std 0), median, and ``n`` (number of rows). Dice and NSD statistics pool every row (their conventional values
0 and 1 lie inside the metric's range). HD95 statistics pool only the ``hd95_n`` real rows, so a
conventional 0 mm or image diagonal never dominates a mean in mm; the conventional rows are counted in
``n_absent``, ``n_missed`` and ``n_false_positive`` instead (HD95 statistics are NaN when a group has no
real row). Besides the requested ``group_by`` columns, the summary has one ``all`` group pooling every row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from bundles.errors import BundleInputError, ConfigurationError

__all__ = ["METRICS", "ROW_KINDS", "SUMMARY_COLUMNS", "ALL_GROUP", "row_kind", "check_rows", "summarize"]

METRICS = ("dice", "iou", "nsd", "hd95")
"""Metric columns summarised (``hd95`` in mm)."""

ROW_KINDS = ("real", "absent", "missed", "false_positive")
"""What :func:`row_kind` returns: both masks non-empty, both empty, only the prediction empty, only the
reference empty."""

_STATS = ("mean", "std", "median")
_CONVENTION_COUNTS = {"absent": "n_absent", "missed": "n_missed", "false_positive": "n_false_positive"}

SUMMARY_COLUMNS = (
    ("group_by", "group", "n")
    + tuple(f"{metric}_{stat}" for metric in METRICS for stat in _STATS)
    + ("hd95_n", *_CONVENTION_COUNTS.values())
)
"""Columns of ``summary.csv``: the grouping column, its value, the row count, then statistics per metric
(``hd95_*`` over the ``hd95_n`` rows where both masks are non-empty, in mm), then the counts of rows whose HD95
is conventional (``n_absent``: both masks empty; ``n_missed``, ``n_false_positive``: exactly one empty)."""

ALL_GROUP = "all"
"""``group_by`` and ``group`` of the summary row that pools every row."""


def row_kind(row: Mapping[str, object]) -> str:
    """Which of :data:`ROW_KINDS` a metric row is, from its ``pred_voxels`` and ``ref_voxels`` counts.

    Raises:
        ConfigurationError: the row has no voxel counts, or they are not non-negative integers.
    """
    counts = []
    for column in ("pred_voxels", "ref_voxels"):
        value = row.get(column)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigurationError(
                f"metric row (case {row.get('case')!r}, class {row.get('class')!r}) has {column}={value!r}; the report "
                "needs the voxel counts that evaluate_case writes to tell empty masks from real ones"
            )
        counts.append(int(value))
    pred_any, ref_any = counts[0] > 0, counts[1] > 0
    if pred_any and ref_any:
        return "real"
    if not (pred_any or ref_any):
        return "absent"
    return "missed" if ref_any else "false_positive"


def check_rows(rows: Sequence[Mapping[str, object]], group_by: Sequence[str]) -> None:
    """Refuse rows that cannot be summarised.

    Raises:
        BundleInputError: no rows, or a metric that is missing or not finite.
        ConfigurationError: a row lacks ``case``, ``class``, a ``group_by`` column or its voxel counts.
    """
    if not rows:
        raise BundleInputError(None, "no metric rows to report; evaluate at least one case first")
    for index, row in enumerate(rows):
        for column in ("case", "class", *group_by):
            if column not in row:
                raise ConfigurationError(f"metric row {index} has no {column!r} column (it has {sorted(row)})")
        for metric in METRICS:
            value = row.get(metric)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise BundleInputError(
                    None,
                    f"row {index} (case {row['case']!r}, class {row['class']!r}) has {metric}={value!r}; "
                    "every metric must be a finite number (see the empty-mask convention)",
                )
        row_kind(row)


def _stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, population std and median of ``values``; all NaN for no values."""
    if not values:
        return dict.fromkeys(_STATS, math.nan)
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std()), "median": float(np.median(array))}


def _group_entry(column: str, value: object, members: Sequence[Mapping[str, object]]) -> dict[str, object]:
    entry: dict[str, object] = {"group_by": column, "group": value, "n": len(members)}
    kinds = [row_kind(m) for m in members]
    for metric in METRICS:
        pooled = [m for m, kind in zip(members, kinds) if metric != "hd95" or kind == "real"]
        for stat, number in _stats([float(m[metric]) for m in pooled]).items():
            entry[f"{metric}_{stat}"] = number
    entry["hd95_n"] = kinds.count("real")
    for kind, column_name in _CONVENTION_COUNTS.items():
        entry[column_name] = kinds.count(kind)
    return entry


def summarize(rows: Sequence[Mapping[str, object]], group_by: Sequence[str] = ("class",)) -> list[dict]:
    """Statistics of each metric per value of each ``group_by`` column, then one ``all`` row.

    Dice and NSD: mean/std/median over every row of the group. HD95 (mm): mean/std/median over the
    ``hd95_n`` rows where both masks are non-empty (NaN if none); ``n_absent``, ``n_missed`` and
    ``n_false_positive`` count the rows whose HD95 is conventional (see :func:`row_kind`).

    Groups appear in order of first appearance in ``rows``. Returns dicts keyed by :data:`SUMMARY_COLUMNS`.

    Raises:
        BundleInputError: no rows, or a metric that is missing or not finite.
        ConfigurationError: a row lacks a ``group_by`` column or its voxel counts.
    """
    check_rows(rows, group_by)
    groupings: list[tuple[str, dict[object, list[Mapping[str, object]]]]] = []
    for column in group_by:
        groups: dict[object, list[Mapping[str, object]]] = {}
        for row in rows:
            groups.setdefault(row[column], []).append(row)
        groupings.append((column, groups))
    groupings.append((ALL_GROUP, {ALL_GROUP: list(rows)}))
    return [_group_entry(column, value, members) for column, groups in groupings for value, members in groups.items()]
