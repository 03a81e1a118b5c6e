"""Evaluation report: per-case CSV, per-group summary (CSV and Markdown) and a per-class Dice bar chart.

Input rows are the dicts of :func:`bundles.metrics.segmentation.evaluate_case` (``case``, ``class``,
``dice``, ``nsd``, ``hd95`` in mm, voxel counts, ``nsd_tolerance_mm``, plus any extra columns). Under that
module's empty-mask convention every metric is a finite number, so every row enters every mean: a missed
organ counts as Dice 0, NSD 0 and HD95 = the image diagonal. Rows with a missing or non-finite metric are
refused rather than silently dropped.

Statistics per group: arithmetic mean, population standard deviation (``ddof=0``, so a group of one has
std 0), median, and ``n`` (number of rows). Besides the requested ``group_by`` columns, the summary has one
``all`` group pooling every row. All files are written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bundles.errors import BundleInputError, ConfigurationError
from bundles.io.atomic import atomic_write
from bundles.metrics.segmentation import METRIC_COLUMNS

__all__ = ["METRICS", "SUMMARY_COLUMNS", "summarize", "format_table", "write_report"]

METRICS = ("dice", "nsd", "hd95")
"""Metric columns summarised (``hd95`` in mm)."""

SUMMARY_COLUMNS = ("group_by", "group", "n") + tuple(
    f"{metric}_{stat}" for metric in METRICS for stat in ("mean", "std", "median")
)
"""Columns of ``summary.csv``: the grouping column, its value, the row count, then statistics per metric."""

_ALL = "all"


def _check_rows(rows: Sequence[Mapping[str, object]], group_by: Sequence[str]) -> None:
    if not rows:
        raise BundleInputError(None, "no metric rows to report; evaluate at least one case first")
    for index, row in enumerate(rows):
        for column in ("case", "class", *group_by):
            if column not in row:
                raise ConfigurationError(f"metric row {index} has no {column!r} column (it has {sorted(row)})")
        for metric in METRICS:
            value = row.get(metric)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise BundleInputError(
                    None,
                    f"row {index} (case {row['case']!r}, class {row['class']!r}) has {metric}={value!r}; "
                    "every metric must be a finite number (see the empty-mask convention)",
                )


def _stats(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std()), "median": float(np.median(array))}


def summarize(rows: Sequence[Mapping[str, object]], group_by: Sequence[str] = ("class",)) -> list[dict]:
    """Mean/std/median/n of each metric per value of each ``group_by`` column, then one ``all`` row.

    Groups appear in order of first appearance in ``rows``. Returns dicts keyed by :data:`SUMMARY_COLUMNS`.

    Raises:
        BundleInputError: no rows, or a metric that is missing or not finite.
        ConfigurationError: a row lacks a ``group_by`` column.
    """
    _check_rows(rows, group_by)
    groupings: list[tuple[str, dict[object, list[Mapping[str, object]]]]] = []
    for column in group_by:
        groups: dict[object, list[Mapping[str, object]]] = {}
        for row in rows:
            groups.setdefault(row[column], []).append(row)
        groupings.append((column, groups))
    groupings.append((_ALL, {_ALL: list(rows)}))
    summary = []
    for column, groups in groupings:
        for value, members in groups.items():
            entry: dict[str, object] = {"group_by": column, "group": value, "n": len(members)}
            for metric in METRICS:
                for stat, number in _stats([float(m[metric]) for m in members]).items():
                    entry[f"{metric}_{stat}"] = number
            summary.append(entry)
    return summary


def _csv_text(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _row_columns(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """Metric columns first (those present), then extra columns in order of first appearance."""
    columns = [c for c in METRIC_COLUMNS if any(c in row for row in rows)]
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return columns


def format_table(rows: Sequence[Mapping[str, object]]) -> str:
    """A plain-text table of mean Dice (± std), NSD and HD95 per class, for printing on the console.

    Raises:
        BundleInputError: no rows, or a metric that is missing or not finite.
    """
    summary = summarize(rows, ("class",))
    width = max(len(str(s["group"])) for s in summary)
    lines = [f"{'class':<{width}}  {'n':>4}  {'Dice':>15}  {'NSD':>6}  {'HD95 mm':>8}"]
    for s in summary:
        dice_text = f"{s['dice_mean']:.4f} ± {s['dice_std']:.4f}"
        lines.append(
            f"{str(s['group']):<{width}}  {s['n']:>4}  {dice_text:>15}  {s['nsd_mean']:>6.4f}  {s['hd95_mean']:>8.2f}"
        )
    return "\n".join(lines)


def _markdown(summary: Sequence[Mapping[str, object]], rows: Sequence[Mapping[str, object]]) -> str:
    tolerances = sorted({float(r["nsd_tolerance_mm"]) for r in rows if "nsd_tolerance_mm" in r})
    tolerance_text = ", ".join(f"{t:g} mm" for t in tolerances) or "not recorded"
    lines = [
        "# Segmentation metrics",
        "",
        f"{len(rows)} rows from {len({r['case'] for r in rows})} cases. NSD tolerance: {tolerance_text}. "
        "HD95 in mm.",
        "",
        "Empty masks: both empty gives Dice 1, NSD 1, HD95 0; exactly one empty (a miss or a false positive) "
        "gives Dice 0, NSD 0 and HD95 equal to the diagonal of the image extent. No row is left out of a mean.",
        "Statistics: mean, population std, median over rows.",
    ]
    for column in dict.fromkeys(s["group_by"] for s in summary):
        heading = "## All rows" if column == _ALL else f"## By {column}"
        lines += ["", heading, "", f"| {column} | n | Dice mean ± std | Dice median | NSD mean ± std "
                  "| HD95 mean ± std (mm) |", "|---|---:|---:|---:|---:|---:|"]
        for s in (s for s in summary if s["group_by"] == column):
            lines.append(
                f"| {s['group']} | {s['n']} | {s['dice_mean']:.4f} ± {s['dice_std']:.4f} | {s['dice_median']:.4f} "
                f"| {s['nsd_mean']:.4f} ± {s['nsd_std']:.4f} | {s['hd95_mean']:.2f} ± {s['hd95_std']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _dice_figure(summary: Sequence[Mapping[str, object]]) -> Figure:
    per_class = [s for s in summary if s["group_by"] == "class"]
    figure = Figure(figsize=(6.0, 1.0 + 0.35 * len(per_class)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(len(per_class))
    axes.barh(
        positions,
        [s["dice_mean"] for s in per_class],
        xerr=[s["dice_std"] for s in per_class],
        color="tab:blue",
        ecolor="black",
        capsize=3,
    )
    axes.set_yticks(positions, [str(s["group"]) for s in per_class])
    axes.invert_yaxis()
    axes.set_xlim(0.0, 1.05)
    axes.set_xlabel("Dice (mean ± std over cases)")
    axes.set_title("Mean Dice per class")
    return figure


def write_report(
    rows: Sequence[Mapping[str, object]], output_dir: str | PathLike, *, group_by: Sequence[str] = ("class",)
) -> dict[str, Path]:
    """Write ``metrics.csv``, ``summary.csv``, ``summary.md`` and ``dice_per_class.png`` into ``output_dir``.

    Args:
        rows: per (case, class) metric rows, as returned by ``evaluate_case``.
        output_dir: folder to write into (created if missing).
        group_by: row columns to summarise by, each separately (e.g. ``("class", "dataset", "region")``).
            ``"class"`` is always included, since the bar chart is per class.

    Returns:
        ``{"metrics_csv", "summary_csv", "summary_md", "dice_png"}`` -> written path.

    Raises:
        BundleInputError: no rows, or a metric that is missing or not finite.
        ConfigurationError: a row lacks a ``group_by`` column.
    """
    group_by = tuple(dict.fromkeys(("class", *group_by)))
    summary = summarize(rows, group_by)
    output = Path(output_dir)
    metrics_text = _csv_text(rows, _row_columns(rows))
    summary_text = _csv_text(summary, SUMMARY_COLUMNS)
    markdown_text = _markdown(summary, rows)
    figure = _dice_figure(summary)
    return {
        "metrics_csv": atomic_write(output / "metrics.csv", lambda t: t.write_text(metrics_text, encoding="utf-8")),
        "summary_csv": atomic_write(output / "summary.csv", lambda t: t.write_text(summary_text, encoding="utf-8")),
        "summary_md": atomic_write(output / "summary.md", lambda t: t.write_text(markdown_text, encoding="utf-8")),
        "dice_png": atomic_write(output / "dice_per_class.png", lambda t: figure.savefig(t, format="png", dpi=100)),
    }
