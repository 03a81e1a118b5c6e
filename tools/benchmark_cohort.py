"""Cohort throughput of the per-case job: SAT-Nano (the main job's demo model) over the shipped CT scans
repeated to N cases, with 1 and 2 processes.

    python -m tools.main_job                  # trains the demo model into demo_output/ct/model (once)
    python -m tools.benchmark_cohort run [--cases 20] [--processes "[1,2]"] [--model_dir demo_output/ct/model]
    python -m tools.benchmark_cohort run --random_weights True [--device cuda]   # no trained model needed

The cohort folder alternates patient A (NIfTI) and patient B (a DICOM series), each case in its own
sub-folder of links to the shipped files. Each process count runs ``configs/batch_inference.json`` (one
process: plain ``python``, 2 threads; more: ``torchrun --standalone`` with ``configs/mgpu_inference.json``,
1 thread each) into a fresh output folder, with the CT job's nine prompts. Reported per run: wall time of the
whole command (start-up and model loading included), cases per hour over that wall time, and the mean
seconds per case spent reading (in the reader process), in the model (SAT's stages: queries, preprocess,
network, resample) and writing, from the run's ``timings.csv``, and the peak RSS of the largest process so
far (``ru_maxrss`` of this tool's finished children). With ``--random_weights True`` the model is the demo
configuration with random weights, written into the output folder first (speed does not depend on the
values); ``--overlay`` adds a config file after the others (smaller sizes, as ``tools.benchmark_all --tiny``
does), ``--device`` is passed to the bundle. Prints a Markdown table; writes JSON.
"""

from __future__ import annotations

import csv
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import fire

from bundles.data.examples import EXAMPLES
from bundles.io.atomic import atomic_write_json
from tools.main_job import JOBS

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE = REPO_ROOT / "sat_nano"
COLUMNS = ("read", "queries", "preprocess", "network", "resample", "write")


def build_cohort(folder: Path, cases: int) -> Path:
    """``folder/case_01 ..``: links to patient A's NIfTI (odd cases) or to patient B's DICOM files (even)."""
    shutil.rmtree(folder, ignore_errors=True)
    nifti, dicom = EXAMPLES["ct_abdomen_pelvis"].image, EXAMPLES["ct_dicom_series"].image
    for i in range(1, cases + 1):
        case = folder / f"case_{i:02d}"
        case.mkdir(parents=True)
        if i % 2:
            os.symlink(nifti.resolve(), case / nifti.name)
        else:
            for file in sorted(dicom.iterdir()):
                os.symlink(file.resolve(), case / file.name)
    return folder


def _configs(overlay: str | None) -> list[str]:
    """The inference configs of the demo model, ``overlay`` (a JSON file) last."""
    return ["configs/inference.json", "configs/demo.json", *([str(Path(overlay).resolve())] if overlay else [])]


def _command(processes: int, scans: Path, output: Path, model_dir: Path, device: str, overlay: str | None) -> list[str]:
    configs = [*_configs(overlay), "configs/batch_inference.json"]
    launcher = [sys.executable]
    if processes > 1:
        configs.append("configs/mgpu_inference.json")
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    shared = {"prompts": list(JOBS["ct"].prompts), "modality": "ct"}
    return [*launcher, "-m", "monai.bundle", "run", "--config_file", str(configs), "--input_dir", str(scans),
            "--input_dict", repr(shared), "--output_dir", str(output), "--model_dir", str(model_dir), "--progress", "False",
            "--device", device]


def write_random_model(folder: Path, overlay: str | None = None) -> Path:
    """The demo model's ``model.pt`` and ``text_encoder.pt`` with random network weights (the text encoder's
    tower is the packaged sentence model, as in the demo) in ``folder``; returns ``folder``."""
    import torch
    from monai.bundle import ConfigParser

    torch.manual_seed(0)
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / c) for c in _configs(overlay)])
    parser["bundle_root"] = str(BUNDLE)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(parser.get_parsed_content("network_def").state_dict(), folder / "model.pt")
    torch.save(parser.get_parsed_content("text_encoder_def")().state_dict(), folder / "text_encoder.pt")
    return folder


def _mean_split(timings: Path) -> dict[str, float]:
    with timings.open(newline="") as f:
        done = [row for row in csv.DictReader(f) if row["status"] == "done"]
    return {c: sum(float(row.get(f"{c}_s") or 0.0) for row in done) / max(len(done), 1) for c in COLUMNS} | {"done": len(done)}


def run(cases: int = 20, processes: Sequence[int] = (1, 2), model_dir: str = "demo_output/ct/model",
        output_dir: str = "benchmark_cohort", output: str = "benchmark_cohort.json", device: str = "auto",
        random_weights: bool = False, overlay: str | None = None) -> None:
    """Build the cohort, run it once per process count, print the table and write ``output``.

    Args:
        cases: cases in the cohort (patient A and B alternating).
        processes: process counts to measure, e.g. "[1,2]".
        model_dir: the demo model (``python -m tools.main_job`` writes it to demo_output/ct/model); ignored
            with ``random_weights``.
        output_dir: folder for the cohort links and each run's outputs (replaced).
        output: JSON file receiving the rows.
        device: the bundle's ``--device`` ("auto": a CUDA GPU when there is one).
        random_weights: write the demo configuration with random weights to ``output_dir/random_model``
            and measure that instead of ``model_dir``.
        overlay: an extra config file (JSON) given after the demo's, e.g. smaller network sizes.
    """
    work = Path(output_dir).resolve()
    model = write_random_model(work / "random_model", overlay) if random_weights else Path(model_dir).resolve()
    if not (model / "model.pt").is_file():
        raise SystemExit(f"error: {model}: no model.pt; run `python -m tools.main_job` first (it trains the demo model there)")
    scans = build_cohort(work / "scans", int(cases))
    rows = []
    for count in [int(p) for p in processes]:
        out = work / f"out_{count}proc"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        result = subprocess.run(_command(count, scans, out, model, device, overlay), cwd=BUNDLE, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"error: the {count}-process run failed (exit {result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
        split = _mean_split(out / "timings.csv")
        rows.append({"processes": count, "cases": int(cases), "device": device, "wall_s": round(wall, 1),
                     "cases_per_hour": round(3600 * split.pop("done") / wall, 1), **{f"{k}_s": round(v, 2) for k, v in split.items()},
                     "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2)})
        print(f"{count} process(es): {wall:.0f} s, {rows[-1]['cases_per_hour']} cases per hour", flush=True)
    header = ["processes", "wall s", "cases per hour", *(f"{c} s" for c in COLUMNS)]
    print("\n| " + " | ".join(header) + " |\n|" + "---:|" * len(header))
    for r in rows:
        print(f"| {r['processes']} | {r['wall_s']} | {r['cases_per_hour']} | " + " | ".join(f"{r[f'{c}_s']:.1f}" for c in COLUMNS) + " |")
    atomic_write_json(Path(output), {"rows": rows, "date": time.strftime("%Y-%m-%d"), "model_dir": str(model)})


if __name__ == "__main__":
    fire.Fire({"run": run})
