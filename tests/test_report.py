"""The evaluation report: CSV content, summary statistics, Markdown, PNG, atomic writes."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from bundles.errors import BundleInputError, ConfigurationError
from bundles.metrics.report import SUMMARY_COLUMNS, format_table, summarize, write_report
from bundles.metrics.segmentation import evaluate_case

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _row(case: str, name: str, dice: float, dataset: str, hd95: float = 2.0) -> dict:
    return {
        "case": case,
        "class": name,
        "dice": dice,
        "nsd": dice,
        "hd95": hd95,
        "pred_voxels": 10,
        "ref_voxels": 12,
        "nsd_tolerance_mm": 1.0,
        "dataset": dataset,
    }


ROWS = [
    _row("a", "liver", 0.9, "d1"),
    _row("a", "spleen", 0.0, "d1", hd95=50.0),
    _row("b", "liver", 0.7, "d2"),
    _row("b", "spleen", 0.6, "d2"),
    _row("c", "liver", 0.8, "d2"),
]


def _read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_write_report_files(tmp_path):
    paths = write_report(ROWS, tmp_path / "report", group_by=("class", "dataset"))
    assert set(paths) == {"metrics_csv", "summary_csv", "summary_md", "dice_png"}
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "dice_per_class.png",
        "metrics.csv",
        "summary.csv",
        "summary.md",
    ]  # nothing else: no temporary files left behind

    metrics = _read_csv(paths["metrics_csv"])
    assert list(metrics[0])[:5] == ["case", "class", "dice", "nsd", "hd95"] and "dataset" in metrics[0]
    assert [(m["case"], m["class"], float(m["dice"])) for m in metrics] == [
        (r["case"], r["class"], r["dice"]) for r in ROWS
    ]

    summary = {(s["group_by"], s["group"]): s for s in _read_csv(paths["summary_csv"])}
    assert list(next(iter(summary.values()))) == list(SUMMARY_COLUMNS)
    liver = summary[("class", "liver")]
    assert int(liver["n"]) == 3
    assert float(liver["dice_mean"]) == pytest.approx(0.8)
    assert float(liver["dice_std"]) == pytest.approx(math.sqrt(0.02 / 3))  # population std
    assert float(liver["dice_median"]) == pytest.approx(0.8)
    spleen = summary[("class", "spleen")]
    # The miss (Dice 0, HD95 50 mm) is counted, not dropped.
    assert float(spleen["dice_mean"]) == pytest.approx(0.3) and float(spleen["hd95_mean"]) == pytest.approx(26.0)
    d2 = summary[("dataset", "d2")]
    assert int(d2["n"]) == 3 and float(d2["dice_mean"]) == pytest.approx(0.7)
    pooled = summary[("all", "all")]
    assert int(pooled["n"]) == 5 and float(pooled["dice_median"]) == pytest.approx(0.7)

    markdown = paths["summary_md"].read_text(encoding="utf-8")
    assert "NSD tolerance: 1 mm" in markdown and "## By dataset" in markdown
    assert "| liver | 3 | 0.8000 ± 0.0816 | 0.8000 |" in markdown

    png = paths["dice_png"].read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 1000


def test_write_report_replaces_previous_files(tmp_path):
    write_report(ROWS, tmp_path)
    write_report(ROWS[:2], tmp_path)
    assert len(_read_csv(tmp_path / "metrics.csv")) == 2
    assert len(list(tmp_path.iterdir())) == 4


def test_report_from_evaluated_case(tmp_path):
    ref = np.zeros((8, 8, 8), dtype=bool)
    ref[2:6, 2:6, 2:6] = True
    rows = evaluate_case({"liver": ref}, {"liver": ref, "spleen": ref}, (1.0, 1.0, 3.0), case_id="x")
    paths = write_report(rows, tmp_path)
    summary = {s["group"]: s for s in _read_csv(paths["summary_csv"])}
    assert float(summary["liver"]["dice_mean"]) == 1.0
    assert float(summary["spleen"]["hd95_mean"]) == pytest.approx(np.sqrt(8**2 + 8**2 + 24**2))


def test_format_table():
    table = format_table(ROWS)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["class", "n", "Dice"]
    assert lines[1].split()[:5] == ["liver", "3", "0.8000", "±", "0.0816"]
    assert lines[-1].split()[:3] == ["all", "5", "0.6000"]


def test_bad_rows_are_refused(tmp_path):
    with pytest.raises(BundleInputError, match="no metric rows"):
        write_report([], tmp_path)
    with pytest.raises(BundleInputError, match="hd95=nan"):
        summarize([{**ROWS[0], "hd95": float("nan")}])
    with pytest.raises(ConfigurationError, match="'region'"):
        write_report(ROWS, tmp_path, group_by=("region",))
    assert list(tmp_path.iterdir()) == []
