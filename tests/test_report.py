"""The evaluation report: CSV content, summary statistics, Markdown, PNG, atomic writes."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from bundles.errors import BundleInputError, ConfigurationError
from bundles.metrics.report import HD95_SENTENCE, dice_figure, format_table, write_report
from bundles.metrics.segmentation import evaluate_case
from bundles.metrics.summary import SUMMARY_COLUMNS, row_kind, summarize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _row(case: str, name: str, dice: float, dataset: str, hd95: float = 2.0) -> dict:
    return {
        "case": case,
        "class": name,
        "dice": dice,
        "iou": dice / (2 - dice),
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
    assert set(paths) == {"metrics_csv", "summary_csv", "summary_md", "report_json", "dice_png"}
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "dice_per_class.png",
        "metrics.csv",
        "report.json",
        "summary.csv",
        "summary.md",
    ]  # nothing else: no temporary files left behind

    metrics = _read_csv(paths["metrics_csv"])
    assert list(metrics[0])[:6] == ["case", "class", "dice", "iou", "nsd", "hd95"] and "dataset" in metrics[0]
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
    # Both spleen rows have non-empty masks: Dice 0 with HD95 50 mm is a real (bad) result, averaged.
    assert float(spleen["dice_mean"]) == pytest.approx(0.3) and float(spleen["hd95_mean"]) == pytest.approx(26.0)
    assert (int(spleen["hd95_n"]), int(spleen["n_missed"]), int(spleen["n_absent"])) == (2, 0, 0)
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
    assert len(list(tmp_path.iterdir())) == 5


def test_report_from_evaluated_case(tmp_path):
    ref = np.zeros((8, 8, 8), dtype=bool)
    ref[2:6, 2:6, 2:6] = True
    rows = evaluate_case({"liver": ref}, {"liver": ref, "spleen": ref}, (1.0, 1.0, 3.0), case_id="x")
    paths = write_report(rows, tmp_path)
    summary = {s["group"]: s for s in _read_csv(paths["summary_csv"])}
    assert float(summary["liver"]["dice_mean"]) == 1.0
    # The missed spleen keeps its conventional HD95 (the image diagonal) in metrics.csv ...
    metrics = {m["class"]: m for m in _read_csv(paths["metrics_csv"])}
    assert float(metrics["spleen"]["hd95"]) == pytest.approx(np.sqrt(8**2 + 8**2 + 24**2))
    # ... but no HD95 statistic is made of it: it is counted as a miss instead.
    assert math.isnan(float(summary["spleen"]["hd95_mean"]))
    assert (summary["spleen"]["hd95_n"], summary["spleen"]["n_missed"]) == ("0", "1")
    assert float(summary["all"]["hd95_mean"]) == 0.0 and summary["all"]["hd95_n"] == "1"


def test_format_table():
    table = format_table(ROWS)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["class", "n", "Dice"]
    assert lines[1].split()[:5] == ["liver", "3", "0.8000", "±", "0.0816"]
    assert lines[-1].split()[:3] == ["all", "5", "0.6000"]
    # HD95 mean over the 5 real rows (4 x 2 mm, 1 x 50 mm), then HD95 n, absent, missed, false positives.
    assert lines[-1].split()[-5:] == ["11.60", "5", "0", "0", "0"]


def test_bad_rows_are_refused(tmp_path):
    with pytest.raises(BundleInputError, match="no metric rows"):
        write_report([], tmp_path)
    with pytest.raises(BundleInputError, match="hd95=nan"):
        summarize([{**ROWS[0], "hd95": float("nan")}])
    with pytest.raises(ConfigurationError, match="'region'"):
        write_report(ROWS, tmp_path, group_by=("region",))
    with pytest.raises(ConfigurationError, match="ref_voxels"):
        write_report([{k: v for k, v in ROWS[0].items() if k != "ref_voxels"}], tmp_path)
    assert list(tmp_path.iterdir()) == []


def _conventional_rows() -> list[dict]:
    """Liver: two real cases (HD95 4 and 6 mm), one miss (HD95 = a 700 mm diagonal), one correctly absent
    (HD95 0), one false positive (700 mm)."""
    rows = [_row("a", "liver", 0.9, "d1", hd95=4.0), _row("b", "liver", 0.5, "d1", hd95=6.0)]
    rows.append({**_row("c", "liver", 0.0, "d1", hd95=700.0), "pred_voxels": 0})
    rows.append({**_row("d", "liver", 1.0, "d1", hd95=0.0), "pred_voxels": 0, "ref_voxels": 0})
    rows.append({**_row("e", "liver", 0.0, "d1", hd95=700.0), "ref_voxels": 0})
    return rows


def test_row_kind_from_voxel_counts():
    kinds = [row_kind(r) for r in _conventional_rows()]
    assert kinds == ["real", "real", "missed", "absent", "false_positive"]
    with pytest.raises(ConfigurationError, match="pred_voxels"):
        row_kind({"case": "a", "class": "liver", "ref_voxels": 3})


def test_hd95_statistics_leave_out_conventional_values(tmp_path):
    rows = _conventional_rows()
    liver = summarize(rows)[0]
    # Over the two real cases only: the 700 mm diagonals and the 0 mm of the absent case are not averaged.
    assert (liver["hd95_mean"], liver["hd95_std"], liver["hd95_median"]) == (5.0, 1.0, 5.0)
    assert (liver["n"], liver["hd95_n"], liver["n_absent"], liver["n_missed"], liver["n_false_positive"]) == (5, 2, 1, 1, 1)
    # Dice still pools every row, conventional ones included.
    assert liver["dice_mean"] == pytest.approx(2.4 / 5)

    paths = write_report(rows, tmp_path)
    metrics = _read_csv(paths["metrics_csv"])
    assert [float(m["hd95"]) for m in metrics] == [4.0, 6.0, 700.0, 0.0, 700.0]  # per-row values unchanged
    markdown = paths["summary_md"].read_text(encoding="utf-8")
    assert HD95_SENTENCE in markdown
    assert "| liver | 5 | 0.4800 ± 0.4261 | 0.5000 | 0.4303 ± 0.4135 | 0.4800 ± 0.4261 | 5.00 ± 1.00 | 2 | 1 | 1 | 1 |" in markdown


def test_summary_has_a_per_case_table(tmp_path):
    paths = write_report(ROWS + [{**_row("c", "spleen", 0.0, "d2", hd95=700.0), "pred_voxels": 0}], tmp_path)
    markdown = paths["summary_md"].read_text(encoding="utf-8")
    table = markdown[markdown.index("## Per case"):].splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("| case"))
    assert table[header] == "| case | liver | spleen |"
    assert table[header + 2 :] == [
        "| a | 0.900 / 0.900 / 2.0 | 0.000 / 0.000 / 50.0 |",
        "| b | 0.700 / 0.700 / 2.0 | 0.600 / 0.600 / 2.0 |",
        "| c | 0.800 / 0.800 / 2.0 | 0.000 / 0.000 / 700.0 (missed) |",
    ]


def test_class_missing_from_a_case_is_a_dash(tmp_path):
    paths = write_report(ROWS, tmp_path)  # case c has no spleen row
    assert "| c | 0.800 / 0.800 / 2.0 | - |" in paths["summary_md"].read_text(encoding="utf-8")


def test_provenance_in_summary_and_json(tmp_path):
    weights = tmp_path / "model.pt"
    digest = hashlib.sha256(b"weights").hexdigest()
    provenance = {
        "model": "SAT-Nano",
        "weights": [{"path": weights, "sha256": digest}, {"path": "text_encoder.pt", "sha256": "ab"}],
        "configs": ["configs/inference.json", tmp_path / "extra.json"],
    }
    before = datetime.now(timezone.utc).replace(microsecond=0)
    paths = write_report(ROWS, tmp_path / "out", provenance=provenance)
    after = datetime.now(timezone.utc)

    report = json.loads(paths["report_json"].read_text(encoding="utf-8"))
    recorded = report["provenance"]
    assert recorded["model"] == "SAT-Nano"
    assert recorded["weights"] == [{"path": str(weights), "sha256": digest}, {"path": "text_encoder.pt", "sha256": "ab"}]
    assert recorded["configs"] == ["configs/inference.json", str(tmp_path / "extra.json")]
    date = datetime.fromisoformat(recorded["date"])
    assert date.utcoffset() == timedelta(0) and before <= date <= after
    assert (report["rows"], report["cases"]) == (5, 3)
    liver = next(s for s in report["summary"] if s["group"] == "liver")
    assert liver["dice_mean"] == pytest.approx(0.8) and liver["hd95_n"] == 3

    markdown = paths["summary_md"].read_text(encoding="utf-8").splitlines()
    assert markdown[:3] == ["# Segmentation metrics", "", "## Provenance"]
    top = "\n".join(markdown[:10])
    assert "- model: SAT-Nano" in top and f"- date: {recorded['date']}" in top
    assert f"- configs: configs/inference.json, {tmp_path / 'extra.json'}" in top
    assert f"- weights: path: {weights}, sha256: {digest}; path: text_encoder.pt, sha256: ab" in top


def test_given_date_is_kept_and_nan_is_null_in_json(tmp_path):
    rows = [{**_row("a", "liver", 0.0, "d1", hd95=700.0), "pred_voxels": 0}]
    paths = write_report(rows, tmp_path, provenance={"date": "2026-01-02T03:04:05+00:00"})
    report = json.loads(paths["report_json"].read_text(encoding="utf-8"))  # strict JSON: no NaN tokens
    assert report["provenance"] == {"date": "2026-01-02T03:04:05+00:00"}
    assert report["summary"][0]["hd95_mean"] is None and report["summary"][0]["n_missed"] == 1
    assert "| liver | 1 | 0.0000 ± 0.0000 | 0.0000 | 0.0000 ± 0.0000 | 0.0000 ± 0.0000 | n/a | 0 | 0 | 1 | 0 |" in (
        paths["summary_md"].read_text(encoding="utf-8")
    )


def test_dice_figure_labels_values_and_spread():
    figure = dice_figure(ROWS)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["liver (n=3)", "spleen (n=2)"]
    assert sorted(t.get_text() for t in axes.texts) == ["0.30", "0.80"]
    assert [b.get_width() for b in axes.patches] == pytest.approx([0.8, 0.3])
    # Whiskers from min to max Dice, one per class with n > 1.
    segments = [s for collection in axes.collections for s in collection.get_segments()]
    spans = sorted((round(float(s[0][0]), 6), round(float(s[1][0]), 6)) for s in segments)
    assert spans == [(0.0, 0.6), (0.7, 0.9)]
    single = dice_figure(ROWS[:2])  # n = 1 per class: no whisker
    assert [s for c in single.axes[0].collections for s in c.get_segments()] == []
    assert [t.get_text() for t in single.axes[0].get_yticklabels()] == ["liver (n=1)", "spleen (n=1)"]
