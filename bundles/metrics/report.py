"""Evaluation report: per-case CSV, per-group summary (CSV, Markdown, JSON) and a per-class Dice bar chart.

Input rows are the dicts of :func:`bundles.metrics.segmentation.evaluate_case`; the statistics and the kinds of
rows (real, absent, missed, false positive) are those of :mod:`bundles.metrics.summary`, which also says which
rows are refused. ``metrics.csv`` keeps every row's values as :func:`evaluate_case` returned them. All files
are written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bundles.io.atomic import atomic_write, atomic_write_json
from bundles.metrics.segmentation import METRIC_COLUMNS
from bundles.metrics.summary import ALL_GROUP, SUMMARY_COLUMNS, check_rows, row_kind, summarize

__all__ = ["HD95_SENTENCE", "CONVENTION_SENTENCE", "format_table", "dice_figure", "write_report"]

HD95_SENTENCE = (
    "HD95 statistics are over the rows where both masks are non-empty (HD95 n); rows whose HD95 is set by the "
    "empty-mask convention (absent: both empty, 0 mm; missed / false positive: one empty, the image diagonal) "
    "are counted in their own columns instead of being averaged, while Dice and NSD statistics include every row."
)
"""The sentence of ``summary.md`` (and ``report.json``) that says how HD95 is aggregated."""

CONVENTION_SENTENCE = (
    "Empty masks in metrics.csv: both empty gives Dice 1, NSD 1, HD95 0; exactly one empty (a miss or a false "
    "positive) gives Dice 0, NSD 0 and HD95 equal to the diagonal of the image extent."
)
"""The per-row empty-mask convention of :mod:`bundles.metrics.segmentation`, as stated in the report."""

_KIND_LABELS = {"absent": "absent", "missed": "missed", "false_positive": "false positive"}


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


def _hd95_text(entry: Mapping[str, object], spread: bool = True) -> str:
    """``mean ± std`` of HD95 in mm, or ``n/a`` when the group has no row with both masks non-empty."""
    if not entry["hd95_n"]:
        return "n/a"
    return f"{entry['hd95_mean']:.2f} ± {entry['hd95_std']:.2f}" if spread else f"{entry['hd95_mean']:.2f}"


def format_table(rows: Sequence[Mapping[str, object]]) -> str:
    """A plain-text table per class, for printing on the console: mean Dice (± std), mean NSD, mean HD95 in
    mm over the ``HD95 n`` rows with both masks non-empty, and the counts of absent / missed / false-positive
    rows (whose HD95 is conventional and not in the mean).

    Raises:
        BundleInputError: no rows, or a metric that is missing or not finite.
        ConfigurationError: a row lacks its voxel counts.
    """
    summary = summarize(rows, ("class",))
    width = max(len(str(s["group"])) for s in summary)
    lines = [
        f"{'class':<{width}}  {'n':>4}  {'Dice':>15}  {'NSD':>6}  {'HD95 mm':>8}  {'HD95 n':>6}  "
        f"{'absent':>6}  {'missed':>6}  {'FP':>4}"
    ]
    for s in summary:
        dice_text = f"{s['dice_mean']:.4f} ± {s['dice_std']:.4f}"
        lines.append(
            f"{str(s['group']):<{width}}  {s['n']:>4}  {dice_text:>15}  {s['nsd_mean']:>6.4f}  "
            f"{_hd95_text(s, spread=False):>8}  {s['hd95_n']:>6}  {s['n_absent']:>6}  {s['n_missed']:>6}  "
            f"{s['n_false_positive']:>4}"
        )
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: mappings and sequences recursively, paths and other objects as text,
    dates in ISO 8601, NaN/inf as null (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value.__fspath__()) if isinstance(value, PathLike) else str(value)


def _with_date(provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    """The provenance as JSON data, with ``date`` (UTC, ISO 8601, seconds) added when not given."""
    record = _jsonable(dict(provenance or {}))
    if "date" not in record:
        record["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return record


def _md(value: object) -> str:
    """Text for a Markdown table cell or list item: pipes escaped, newlines flattened."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _provenance_value(value: Any) -> str:
    """One line of text for a provenance value (JSON data): ``key: value`` pairs of a mapping joined by
    commas, list items by commas (by semicolons when they are mappings or lists)."""
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_provenance_value(item)}" for key, item in value.items())
    if isinstance(value, list):
        separator = "; " if any(isinstance(item, (dict, list)) for item in value) else ", "
        return separator.join(_provenance_value(item) for item in value)
    return str(value)


def _provenance_lines(provenance: Mapping[str, Any]) -> list[str]:
    return ["## Provenance", ""] + [f"- {_md(key)}: {_md(_provenance_value(value))}" for key, value in provenance.items()]


def _group_tables(summary: Sequence[Mapping[str, object]]) -> list[str]:
    lines: list[str] = []
    for column in dict.fromkeys(s["group_by"] for s in summary):
        heading = "## All rows" if column == ALL_GROUP else f"## By {column}"
        lines += [
            "",
            heading,
            "",
            f"| {column} | n | Dice mean ± std | Dice median | IoU mean ± std | NSD mean ± std | HD95 mean ± std (mm) | HD95 n "
            "| absent | missed | false positive |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in (s for s in summary if s["group_by"] == column):
            lines.append(
                f"| {_md(s['group'])} | {s['n']} | {s['dice_mean']:.4f} ± {s['dice_std']:.4f} | {s['dice_median']:.4f} "
                f"| {s['iou_mean']:.4f} ± {s['iou_std']:.4f} | {s['nsd_mean']:.4f} ± {s['nsd_std']:.4f} | {_hd95_text(s)} | {s['hd95_n']} | {s['n_absent']} "
                f"| {s['n_missed']} | {s['n_false_positive']} |"
            )
    return lines


def _case_cell(row: Mapping[str, object]) -> str:
    """``Dice / NSD / HD95`` of one row; a conventional HD95 is followed by the kind of row in brackets."""
    kind = row_kind(row)
    note = "" if kind == "real" else f" ({_KIND_LABELS[kind]})"
    return f"{float(row['dice']):.3f} / {float(row['nsd']):.3f} / {float(row['hd95']):.1f}{note}"


def _case_table(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """One line per case, one column per class (order of first appearance); ``-`` where a case has no row."""
    classes = list(dict.fromkeys(row["class"] for row in rows))
    cells: dict[object, dict[object, list[str]]] = {}
    for row in rows:
        cells.setdefault(row["case"], {}).setdefault(row["class"], []).append(_case_cell(row))
    lines = [
        "",
        "## Per case",
        "",
        "Dice / NSD / HD95 (mm) of each case and class, as in metrics.csv; a bracket names a row whose HD95 is "
        "set by the empty-mask convention.",
        "",
        "| case | " + " | ".join(_md(c) for c in classes) + " |",
        "|---|" + "---:|" * len(classes),
    ]
    for case, by_class in cells.items():
        lines.append(f"| {_md(case)} | " + " | ".join("; ".join(by_class.get(c, ["-"])) for c in classes) + " |")
    return lines


def _markdown(
    summary: Sequence[Mapping[str, object]], rows: Sequence[Mapping[str, object]], provenance: Mapping[str, Any]
) -> str:
    tolerances = sorted({float(r["nsd_tolerance_mm"]) for r in rows if "nsd_tolerance_mm" in r})
    tolerance_text = ", ".join(f"{t:g} mm" for t in tolerances) or "not recorded"
    lines = [
        "# Segmentation metrics",
        "",
        *_provenance_lines(provenance),
        "",
        "## Conventions",
        "",
        f"{len(rows)} rows from {len({r['case'] for r in rows})} cases. NSD tolerance: {tolerance_text}. "
        "HD95 in mm.",
        "",
        CONVENTION_SENTENCE,
        HD95_SENTENCE,
        "Statistics: mean, population std, median over rows.",
        *_group_tables(summary),
        *_case_table(rows),
    ]
    return "\n".join(lines) + "\n"


def _class_dice(rows: Sequence[Mapping[str, object]]) -> list[tuple[str, np.ndarray]]:
    """Per class (order of first appearance): its Dice values over cases."""
    values: dict[str, list[float]] = {}
    for row in rows:
        values.setdefault(str(row["class"]), []).append(float(row["dice"]))
    return [(name, np.asarray(v, dtype=float)) for name, v in values.items()]


def dice_figure(rows: Sequence[Mapping[str, object]]) -> Figure:
    """Horizontal bar chart of the mean Dice per class over cases.

    Each tick label names the class and its number of cases (``"liver (n=3)"``); each bar carries its mean
    as text; classes with more than one case get a whisker from the minimum to the maximum Dice.

    Raises:
        BundleInputError: no rows, or a metric that is missing or not finite.
        ConfigurationError: a row lacks its voxel counts.
    """
    check_rows(rows, ("class",))
    per_class = _class_dice(rows)
    figure = Figure(figsize=(6.5, 1.2 + 0.4 * len(per_class)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(len(per_class))
    means = np.array([values.mean() for _, values in per_class])
    axes.barh(positions, means, color="tab:blue")
    spread = [i for i, (_, values) in enumerate(per_class) if values.size > 1]
    if spread:
        low = np.array([means[i] - per_class[i][1].min() for i in spread])
        high = np.array([per_class[i][1].max() - means[i] for i in spread])
        axes.errorbar(means[spread], positions[spread], xerr=[low, high], fmt="none", ecolor="black", capsize=3)
    for i, (_, values) in enumerate(per_class):
        axes.text(values.max() + 0.02, positions[i], f"{means[i]:.2f}", va="center", ha="left", fontsize=8)
    axes.set_yticks(positions, [f"{name} (n={values.size})" for name, values in per_class])
    axes.invert_yaxis()
    axes.set_xlim(0.0, 1.15)
    axes.set_xlabel("Dice: bar and label = mean over cases, whisker = min to max (n > 1)")
    axes.set_title("Mean Dice per class")
    return figure


def _report_json(
    summary: Sequence[Mapping[str, object]], rows: Sequence[Mapping[str, object]], provenance: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "provenance": provenance,
        "rows": len(rows),
        "cases": len({r["case"] for r in rows}),
        "nsd_tolerance_mm": sorted({float(r["nsd_tolerance_mm"]) for r in rows if "nsd_tolerance_mm" in r}),
        "conventions": {"empty_masks": CONVENTION_SENTENCE, "hd95_statistics": HD95_SENTENCE},
        "summary": _jsonable(list(summary)),
        "files": {"metrics": "metrics.csv", "summary_csv": "summary.csv", "summary_md": "summary.md",
                  "dice_png": "dice_per_class.png"},
    }


def write_report(
    rows: Sequence[Mapping[str, object]],
    output_dir: str | PathLike,
    *,
    group_by: Sequence[str] = ("class",),
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``metrics.csv``, ``summary.csv``, ``summary.md``, ``report.json`` and ``dice_per_class.png``.

    ``summary.md`` starts with the provenance, then the conventions, the summary per group and a per-case
    table (case x class: Dice / NSD / HD95). ``report.json`` holds the provenance and the summary (the
    numbers of ``summary.csv``, NaN written as null).

    Args:
        rows: per (case, class) metric rows, as returned by ``evaluate_case``.
        output_dir: folder to write into (created if missing).
        group_by: row columns to summarise by, each separately (e.g. ``("class", "dataset", "region")``).
            ``"class"`` is always included, since the bar chart is per class.
        provenance: what produced the numbers, e.g. ``{"model": "SAT-Nano", "weights": [{"path": ...,
            "sha256": ...}], "configs": [...], "date": ...}``; keys and values are written as given (paths and
            other objects as text). ``date`` (UTC, ISO 8601) is added when missing.

    Returns:
        ``{"metrics_csv", "summary_csv", "summary_md", "report_json", "dice_png"}`` -> written path.

    Raises:
        BundleInputError: no rows, or a metric that is missing or not finite.
        ConfigurationError: a row lacks a ``group_by`` column or its voxel counts.
    """
    group_by = tuple(dict.fromkeys(("class", *group_by)))
    summary = summarize(rows, group_by)
    record = _with_date(provenance)
    output = Path(output_dir)
    metrics_text = _csv_text(rows, _row_columns(rows))
    summary_text = _csv_text(summary, SUMMARY_COLUMNS)
    markdown_text = _markdown(summary, rows, record)
    figure = dice_figure(rows)
    return {
        "metrics_csv": atomic_write(output / "metrics.csv", lambda t: t.write_text(metrics_text, encoding="utf-8")),
        "summary_csv": atomic_write(output / "summary.csv", lambda t: t.write_text(summary_text, encoding="utf-8")),
        "summary_md": atomic_write(output / "summary.md", lambda t: t.write_text(markdown_text, encoding="utf-8")),
        "report_json": atomic_write_json(output / "report.json", _report_json(summary, rows, record)),
        "dice_png": atomic_write(output / "dice_per_class.png", lambda t: figure.savefig(t, format="png", dpi=100)),
    }
