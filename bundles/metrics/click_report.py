"""The report of an interactive evaluation: Dice after each click, per case and class.

Rows are ``{'case', 'class', 'click', 'dice_window', 'dice_volume'}``: the Dice after ``click`` clicks in
the model's window (what interactive papers report, e.g. SAM-Med3D's 128³ crop) and on the whole input
volume. Writes ``clicks.csv`` (every row), ``clicks.md`` (mean per class and click, with the number of
cases) and ``dice_vs_clicks.png``; all atomically.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bundles.errors import BundleInputError
from bundles.io.atomic import atomic_write

__all__ = ["COLUMNS", "click_summary", "write_click_report"]

COLUMNS = ("case", "class", "click", "dice_window", "dice_volume")
_METRICS = ("dice_window", "dice_volume")


def click_summary(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean (and min, max) of both Dice per (class, click), classes in order of appearance."""
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((str(row["class"]), int(row["click"])), []).append(row)
    summary = []
    for (name, click), members in groups.items():
        entry: dict[str, Any] = {"class": name, "click": click, "cases": len(members)}
        for metric in _METRICS:
            values = np.array([float(m[metric]) for m in members])
            entry.update({metric: float(values.mean()), f"{metric}_min": float(values.min()), f"{metric}_max": float(values.max())})
        summary.append(entry)
    return summary


def _markdown(summary: Sequence[Mapping[str, Any]], title: str) -> str:
    clicks = sorted({int(e["click"]) for e in summary})
    classes = list(dict.fromkeys(str(e["class"]) for e in summary))
    by_key = {(str(e["class"]), int(e["click"])): e for e in summary}
    lines = [f"# {title}", "", "Mean Dice over cases after each click: in the model's window / on the whole volume.", ""]
    lines.append("| class | cases | " + " | ".join(f"{c} click{'s' if c > 1 else ''}" for c in clicks) + " |")
    lines.append("|---|---|" + "---|" * len(clicks))
    for name in classes:
        cells = [f"{by_key[(name, c)]['dice_window']:.3f} / {by_key[(name, c)]['dice_volume']:.3f}" if (name, c) in by_key else "-" for c in clicks]
        lines.append(f"| {name} | {by_key[(name, clicks[0])]['cases']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _figure(summary: Sequence[Mapping[str, Any]], title: str) -> Figure:
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for i, name in enumerate(dict.fromkeys(str(e["class"]) for e in summary)):
        entries = sorted((e for e in summary if e["class"] == name), key=lambda e: e["click"])
        x = [e["click"] for e in entries]
        color = f"C{i}"
        axes.plot(x, [e["dice_window"] for e in entries], "o-", color=color, label=f"{name}: window")
        axes.plot(x, [e["dice_volume"] for e in entries], "s--", color=color, label=f"{name}: whole volume")
    axes.set_xlabel("clicks")
    axes.set_ylabel("mean Dice over cases")
    axes.set_ylim(0.0, 1.0)
    axes.set_xticks(sorted({int(e["click"]) for e in summary}))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(title)
    return figure


def write_click_report(rows: Sequence[Mapping[str, Any]], output_dir: str | PathLike, title: str = "Dice after each click") -> dict[str, Path]:
    """Write ``clicks.csv``, ``clicks.md`` and ``dice_vs_clicks.png`` to ``output_dir``; return their paths.

    Raises:
        BundleInputError: no rows, or a row without the :data:`COLUMNS`.
    """
    out = Path(output_dir)
    if not rows:
        raise BundleInputError(out, "no evaluation rows: no case had a reference object to click on")
    missing = [c for c in COLUMNS if c not in rows[0]]
    if missing:
        raise BundleInputError(out, f"evaluation rows lack {missing}")
    summary = click_summary(rows)

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    paths = {
        "csv": atomic_write(out / "clicks.csv", write_csv),
        "markdown": atomic_write(out / "clicks.md", lambda tmp: tmp.write_text(_markdown(summary, title), encoding="utf-8")),
        "plot": atomic_write(out / "dice_vs_clicks.png", lambda tmp: _figure(summary, title).savefig(tmp, dpi=110, format="png")),
    }
    return paths
