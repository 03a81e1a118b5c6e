"""Every family's headline speed case on one device, in one command: one Markdown table and a JSON file.

    python -m tools.benchmark_all --device cuda              # full sizes, one GPU
    python -m tools.benchmark_all --device cpu --quick       # the same cases at small sizes, on the CPU

Each measurement runs in a fresh subprocess of the family's own benchmark tool (so its peak memory is its
own), with random weights (speed does not depend on the values) and the bundle's default precision on that
device (SAT: autocast, bfloat16 on the CPU and float16 on CUDA; SAM-Med3D and SAMed: float16 autocast on
CUDA, float32 on the CPU):

| case | tool | full size | ``--quick`` |
|---|---|---|---|
| ``sat_window``: SAT-Nano, one window, fast path | ``benchmark_sat --mode fast`` | 288x288x96, 10 queries | 64x64x32, 2 queries |
| ``sat_whole_scan``: SAT-Nano, a synthetic CT through the bundle's inferer | ``benchmark_sat --mode end_to_end`` | 512x512x200 (window 288x288x96), 10 queries | 128x128x40 (window 64x64x32), 2 queries |
| ``sam_med3d_first_click`` / ``sam_med3d_later_click``: one session on patient B's DICOM series (512x512x20), the first click encodes, later clicks decode (mean) | ``benchmark_sam_med3d --mode session`` | 5 clicks | 2 clicks |
| ``samed_volume``: SAMed ViT-B, the bundle's predictor on a volume of 512x512 slices | ``benchmark_samed samed_bundle`` | 100 slices | 8 slices |
| ``cohort``: the per-case job (SAT-Nano demo configuration, 1 process) over patients A and B alternating | ``benchmark_cohort --random_weights True`` | 20 cases | 3 cases |

Seconds are one forward pass, one whole scan, one click, one volume and the wall time of the whole cohort
command (start-up included; its cases per hour are in the detail column). Peak RSS is the measuring
process's ``ru_maxrss`` (for the cohort: the bundle process's); GPU peak is ``torch.cuda.max_memory_allocated``
(not measured for the cohort, which runs in a process of its own). A case that fails prints one line and
the others still run; the command then exits with status 1. ``--tiny`` is for tests: the quick sizes with
tiny networks, so every case's code runs in about a minute on two CPU cores (its numbers mean nothing).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import fire
import torch

from bundles.io.atomic import atomic_write_json
from bundles.precision import resolve_device

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Network sizes of ``--tiny`` (those of the tests' tiny bundle configs): the harness runs, the numbers mean nothing.
TINY_SAT = {"features": [4, 8, 8, 8, 8, 8], "convs_per_stage": 1, "projection_hidden": 16, "mask_embed_hidden": 8,
            "deep_supervision_hidden": [8, 8, 8], "decoder_layers": 1, "ffn_dim": 32}
TINY_SAM_MED3D = {"img_size": 32, "patch_size": 8, "embed_dim": 48, "depth": 2, "num_heads": 4, "global_attn_indexes": [1],
                  "window_size": 3, "prompt_dim": 48, "decoder_depth": 2, "decoder_heads": 4, "decoder_mlp_dim": 64}
TINY_SAMED = {"img_size": 64, "rank": 2, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2, "global_attn_indexes": [1],
              "window_size": 2, "prompt_dim": 32, "decoder_depth": 2, "decoder_heads": 2, "decoder_mlp_dim": 64}


@dataclass(frozen=True)
class Sizes:
    """What each case measures; :data:`FULL`, :data:`QUICK` and :data:`TINY`."""

    name: str
    sat_window: str
    sat_queries: int
    scan: str
    scan_window: str
    clicks: int
    samed_slices: int
    cohort_cases: int
    sat: dict = field(default_factory=dict)  # network overrides, empty = the released sizes
    sam_med3d: dict = field(default_factory=dict)
    samed: dict = field(default_factory=dict)
    cohort: dict = field(default_factory=dict)  # config overrides of the cohort's bundle run (an overlay file)


FULL = Sizes("full", "288,288,96", 10, "512,512,200", "288,288,96", 5, 100, 20)
QUICK = Sizes("quick", "64,64,32", 2, "128,128,40", "64,64,32", 2, 8, 3)
#: The tiny cohort also runs float32 on one 96^3 window at 4 mm per case (few windows: their count, not the
#: network's size, sets a tiny model's time).
TINY = replace(QUICK, name="tiny", cohort_cases=1, sat=TINY_SAT, sam_med3d=TINY_SAM_MED3D, samed=TINY_SAMED,
               cohort={"amp": False, "spacing": [4.0, 4.0, 4.0], "roi_size": [96, 96, 96], "overlap": 0.0,
                       **{f"network_def#{k}": v for k, v in TINY_SAT.items()}})


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    case: str
    seconds: float
    peak_rss_gb: float | None
    gpu_peak_gb: float | None
    detail: str


@dataclass(frozen=True)
class Measurement:
    """One subprocess: ``python -m <argv>``; ``rows`` turns its JSON result into table rows (``cases`` names them)."""

    cases: tuple[str, ...]
    argv: list[str]
    rows: Callable[[dict], list[Row]]
    result_file: Path | None = None  # where the tool writes its JSON (else: the last stdout line)


def _sat(raw: dict) -> list[Row]:
    case = "sat_whole_scan" if raw["mode"] == "end_to_end" else "sat_window"
    shape = "x".join(map(str, raw.get("image", raw["window"])))
    detail = f"{shape}, window {'x'.join(map(str, raw['window']))}, {raw['queries']} queries"
    return [Row(case, raw["seconds"], raw["peak_rss_gb"], raw["gpu_peak_gb"], detail)]


def _sam_med3d(raw: dict) -> list[Row]:
    where = f"{'x'.join(map(str, raw['volume']))} scan, {'autocast' if raw['amp'] else 'float32'}"
    later = len(raw["click_s"]) - 1
    return [Row("sam_med3d_first_click", raw["first_click_s"], raw["peak_rss_gb"], raw["gpu_peak_gb"], f"image encoder + decoder, {where}"),
            Row("sam_med3d_later_click", raw["later_click_s"], raw["peak_rss_gb"], raw["gpu_peak_gb"], f"mean of {later}, decoder only, {where}")]


def _samed(raw: dict) -> list[Row]:
    detail = f"{raw['slices']} slices of 512x512, {raw['per_slice_s']:.3f} s per slice, {'float32' if raw['mode'] == 'samed_bundle' else 'autocast'}"
    return [Row("samed_volume", round(raw["volume_s"], 2), round(raw["peak_rss_gb"], 2), raw["gpu_peak_gb"], detail)]


def _cohort(raw: dict) -> list[Row]:
    row = raw["rows"][0]
    detail = f"{row['cases']} case(s), {row['cases_per_hour']} cases per hour, network {row['network_s']} s per case"
    return [Row("cohort", row["wall_s"], row["peak_rss_gb"], None, detail)]


def _measurements(device: torch.device, sizes: Sizes, work: Path) -> list[Measurement]:
    cuda = device.type == "cuda"
    sat = ["tools.benchmark_sat", "measure", "--variant=nano", f"--queries={sizes.sat_queries}", f"--device={device}",
           f"--overrides={json.dumps(sizes.sat)}"]
    overlay = None
    if sizes.cohort:
        overlay = work / "cohort_overlay.json"
        overlay.write_text(json.dumps(sizes.cohort))
    cohort_json = work / "cohort.json"
    return [
        Measurement(("sat_window",), [*sat, "--mode=fast", f"--size={sizes.sat_window}"], _sat),
        Measurement(("sat_whole_scan",), [*sat, "--mode=end_to_end", f"--size={sizes.scan_window}", f"--image={sizes.scan}"], _sat),
        Measurement(("sam_med3d_first_click", "sam_med3d_later_click"),
                    ["tools.benchmark_sam_med3d", "measure", "--mode=session", f"--clicks={sizes.clicks}", f"--amp={cuda}",
                     f"--device={device}", f"--overrides={json.dumps(sizes.sam_med3d)}"], _sam_med3d),
        Measurement(("samed_volume",),
                    ["tools.benchmark_samed", "one", "samed_bundle_bf16" if cuda else "samed_bundle", f"--slices={sizes.samed_slices}",
                     f"--device={device}", f"--overrides={json.dumps(sizes.samed)}"], _samed),
        Measurement(("cohort",),
                    ["tools.benchmark_cohort", "run", f"--cases={sizes.cohort_cases}", "--processes=[1]", "--random_weights=True",
                     f"--device={device}", f"--output_dir={work / 'cohort'}", f"--output={cohort_json}",
                     *([f"--overlay={overlay}"] if overlay else [])], _cohort, cohort_json),
    ]


def _run(measurement: Measurement) -> tuple[list[Row], str | None]:
    """Run one measurement in a fresh subprocess; its rows, or an error line."""
    done = subprocess.run([sys.executable, "-m", *measurement.argv], capture_output=True, text=True, cwd=REPO_ROOT)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()
        return [], lines[-1]
    try:
        text = measurement.result_file.read_text() if measurement.result_file else done.stdout.strip().splitlines()[-1]
        return measurement.rows(json.loads(text)), None
    except (OSError, IndexError, KeyError, ValueError) as error:
        return [], f"unreadable result: {type(error).__name__}: {error}"


def describe_machine(device: torch.device) -> dict:
    """CPU model and cores, the GPU's name (CUDA only), torch and CUDA versions."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"cpu": cpu, "cpu_cores": os.cpu_count(), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()}


def _gb(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _table(rows: list[Row], failed: dict[str, str], device: torch.device, machine: dict, sizes: Sizes) -> list[str]:
    where = machine["gpu"] or f"{machine['cpu']} ({machine['cpu_cores']} cores)"
    lines = [f"Headline cases, {sizes.name} sizes, on {device} ({where}), torch {machine['torch']}, random weights, {time.strftime('%Y-%m-%d')}:",
             "", "| case | device | seconds | peak RSS (GB) | GPU peak (GB) | detail |", "|---|---|---:|---:|---:|---|"]
    lines += [f"| {r.case} | {device} | {r.seconds} | {_gb(r.peak_rss_gb)} | {_gb(r.gpu_peak_gb)} | {r.detail} |" for r in rows]
    lines += [f"| {case} | {device} | failed | - | - | {error} |" for case, error in failed.items()]
    return lines


def main(device: str = "auto", quick: bool = False, tiny: bool = False, output: str = "benchmark_all.json",
         cases: str | Sequence[str] = "") -> None:
    """Measure every family's headline case on ``device``, print one Markdown table, write ``output``.

    Args:
        device: "cuda" (or "cuda:N"), "cpu", or "auto" (the first CUDA GPU when there is one, else the CPU).
        quick: small sizes (SAT window 64x64x32 with 2 queries, whole scan 128x128x40, SAM-Med3D 2 clicks,
            SAMed 8 slices, cohort 3 cases) instead of the full ones (see the module doc).
        tiny: for tests only: the quick sizes with tiny networks (those of the tests' tiny configs) and a
            1-case cohort on a coarse grid; checks that every case runs, its numbers mean nothing.
        output: JSON file (written atomically): the machine, the sizes, one row per case, the table.
        cases: optional comma-separated subset of the case names, e.g. "sat_window,cohort"; default: all.

    Exits with status 1 after writing everything when a case failed (its row says why).
    """
    target = resolve_device(device)
    sizes = TINY if tiny else QUICK if quick else FULL
    machine = describe_machine(target)
    names = cases.split(",") if isinstance(cases, str) else cases  # fire turns "a,b" into a tuple
    wanted = {str(c).strip() for c in names if str(c).strip()} or None
    rows: list[Row] = []
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="benchmark_all_") as tmp:
        measurements = _measurements(target, sizes, Path(tmp))
        known = {name for m in measurements for name in m.cases}
        if wanted is not None and not wanted <= known:
            raise SystemExit(f"error: --cases: unknown {', '.join(sorted(wanted - known))}; known: {', '.join(sorted(known))}")
        for measurement in measurements:
            if wanted is not None and not wanted & set(measurement.cases):
                continue
            found, error = _run(measurement)
            if error is not None:
                failed.update(dict.fromkeys(measurement.cases, error))
                print(f"{'/'.join(measurement.cases)}: failed: {error}", file=sys.stderr, flush=True)
                continue
            rows += found
            print(f"measured {', '.join(f'{r.case} {r.seconds} s' for r in found)}", file=sys.stderr, flush=True)
    table = _table(rows, failed, target, machine, sizes)
    print("\n".join(table))
    atomic_write_json(output, {"machine": machine, "device": str(target), "sizes": sizes.name, "date": time.strftime("%Y-%m-%d"),
                               "rows": [r.__dict__ | {"device": str(target)} for r in rows],
                               "failed": [{"case": c, "error": e} for c, e in failed.items()], "table": table})
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    fire.Fire(main)
