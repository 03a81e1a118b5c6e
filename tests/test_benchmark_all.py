"""``python -m tools.benchmark_all`` runs every family's headline case and reports one row each (not a timing test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import benchmark_all

REPO = Path(__file__).resolve().parents[1]
HEADLINE = ["sat_window", "sat_whole_scan", "sam_med3d_first_click", "sam_med3d_later_click", "samed_volume", "cohort"]


def test_every_headline_case_runs_on_the_cpu(tmp_path):
    """The command as documented, with ``--tiny`` networks (the quick sizes' code paths in about a minute)."""
    output = tmp_path / "benchmark_all.json"
    done = subprocess.run([sys.executable, "-m", "tools.benchmark_all", "--device", "cpu", "--quick", "--tiny", "--output", str(output)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(output.read_text())
    assert [r["case"] for r in report["rows"]] == HEADLINE
    assert report["failed"] == [] and report["device"] == "cpu" and report["sizes"] == "tiny"
    for row in report["rows"]:
        assert row["seconds"] > 0 and row["device"] == "cpu" and row["gpu_peak_gb"] is None, row
    assert report["machine"]["torch"] and report["machine"]["cpu"] and report["machine"]["gpu"] is None
    assert "| case | device | seconds |" in done.stdout and "| cohort | cpu |" in done.stdout


def test_a_failing_case_is_one_line_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    """Stand-in measurements (``python -m json.tool``: one fails on a missing file, one prints JSON)."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"seconds": 1.5}))

    def measurements(device, sizes, work):
        row = lambda raw: [benchmark_all.Row("good", raw["seconds"], 0.1, None, "stand-in")]  # noqa: E731
        return [benchmark_all.Measurement(("broken",), ["json.tool", str(tmp_path / "missing.json")], row),
                benchmark_all.Measurement(("good",), ["json.tool", "--compact", str(good)], row)]

    monkeypatch.setattr(benchmark_all, "_measurements", measurements)
    output = tmp_path / "out.json"
    with pytest.raises(SystemExit) as stop:
        benchmark_all.main(device="cpu", quick=True, output=str(output))
    assert stop.value.code == 1
    report = json.loads(output.read_text())
    assert [r["case"] for r in report["rows"]] == ["good"] and report["rows"][0]["seconds"] == 1.5
    assert [f["case"] for f in report["failed"]] == ["broken"] and "missing.json" in report["failed"][0]["error"]
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith("broken: failed:")]) == 1

    with pytest.raises(SystemExit, match="unknown nonsense"):
        benchmark_all.main(device="cpu", cases="good,nonsense", output=str(output))
