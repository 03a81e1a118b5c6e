"""CPU benchmark of one SAT forward pass: seconds and peak memory, plain float32 vs our fast path.

    python -m tools.benchmark_sat run [--queries 10] [--size 288,288,96] [--output benchmark_sat.json]

Measurements (random weights; each in a fresh subprocess, so peak RSS is per measurement):
  nano / float32: channels-first float32 under ``torch.no_grad`` (the official recipe on a CPU);
  nano / fast:    channels_last_3d + bfloat16 autocast + ``inference_mode`` (float32 weights);
  pro / fast:     the same with bfloat16 weights (SAT-Pro's float32 forward needs more than 24 GB);
  nano / end_to_end: a whole synthetic 512x512x200 CT (0.8x0.8x1.5 mm phantom) through the bundle's
                  inferer (preprocessing, sliding windows, resampling back onto the input grid), fast path;
                  its row also splits the seconds into the inferer's stages (preprocess, network, resample).
Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the child (includes building the network).
Prints a Markdown table and writes the rows as JSON.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import fire
import torch

from bundles.engines.stage_times import recording
from bundles.io.atomic import atomic_write_json
from bundles.networks.sat.sat import SAT
from bundles.precision import autocast, channels_last, prepare_for_inference

#: (variant, mode) pairs measured by ``run``.
DEFAULT_CASES = (("nano", "float32"), ("nano", "fast"), ("pro", "fast"), ("nano", "end_to_end"))


def _parse_size(size: str | Sequence[int]) -> tuple[int, int, int]:
    values = [int(v) for v in (size.split(",") if isinstance(size, str) else size)]
    if len(values) != 3:
        raise ValueError(f"--size needs three integers, got {size!r}")
    return values[0], values[1], values[2]


def measure(variant: str = "nano", mode: str = "fast", queries: int = 10, size: str = "288,288,96", seed: int = 0) -> None:
    """One measurement in this process; prints a JSON row on the last stdout line.

    Args:
        variant: "nano" or "pro".
        mode: "float32" (plain) or "fast" (channels_last_3d + bf16 autocast + inference_mode; Pro also with
            bf16 weights).
        queries: number of query embeddings Q.
        size: window "X,Y,Z" (each divisible by 32).
        seed: random seed for weights and inputs.
    """
    torch.manual_seed(seed)
    roi = _parse_size(size)
    network = SAT.build(variant, roi).eval()
    if mode == "end_to_end":
        print(json.dumps(_end_to_end(network, roi, queries, variant)))
        return
    image = torch.randn(1, 1, *roi)
    prompts = torch.randn(1, queries, network.query_dim)
    if mode == "fast":
        prepare_for_inference(network, torch.device("cpu"), bfloat16_weights=variant == "pro")
        image = channels_last(image)
        context = contextlib.ExitStack()
        context.enter_context(torch.inference_mode())
        context.enter_context(autocast(torch.device("cpu"), True))
    elif mode == "float32":
        context = torch.no_grad()
    else:
        raise ValueError(f"unknown mode {mode!r}; use 'float32' or 'fast'")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with context:
        logits = network(image, prompts)
    seconds = time.perf_counter() - start
    row = {
        "variant": variant,
        "mode": mode,
        "window": list(roi),
        "queries": queries,
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "rss_before_forward_gb": round(rss_before / 2**20, 2),
        "logits": [list(logits.shape), str(logits.dtype)],
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(row))


def _end_to_end(network: SAT, roi: tuple[int, int, int], queries: int, variant: str) -> dict:
    """Whole-image inference of a synthetic 512x512x200 CT with ``queries`` prompts (fast path)."""
    from monai.data import MetaTensor

    from bundles.data.phantom import make_ct_phantom
    from bundles.io.grid import ImageGrid
    from bundles.sat.inferer import TextPromptedInferer

    phantom = make_ct_phantom(0, shape=(512, 512, 200), spacing=(0.8, 0.8, 1.5))
    image = MetaTensor(torch.from_numpy(phantom.image.astype("float32"))[None], affine=torch.from_numpy(phantom.affine))
    grid = ImageGrid(phantom.image.shape, phantom.affine, source="synthetic 512x512x200 CT")
    inferer = TextPromptedInferer(network, roi, device="cpu", amp=True, bfloat16_weights=variant == "pro", progress=False)
    start = time.perf_counter()
    with recording() as stages:
        masks = inferer(image, grid, torch.randn(queries, network.query_dim), "ct")
    seconds = time.perf_counter() - start
    return {
        "variant": variant, "mode": "end_to_end", "window": list(roi), "queries": queries, "image": list(grid.shape),
        "seconds": round(seconds, 2), "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "masks": list(masks.shape), "threads": torch.get_num_threads(), "stages_s": {k: round(v, 2) for k, v in stages.items()},
    }


def run(queries: int = 10, size: str = "288,288,96", output: str = "benchmark_sat.json", cases: str = "") -> list[dict]:
    """Run every measurement in a fresh subprocess, print a Markdown table, write the rows to ``output``.

    Args:
        queries: number of query embeddings Q per forward.
        size: window "X,Y,Z" (each divisible by 32); the bundles use 288,288,96.
        output: JSON file for the rows (written atomically).
        cases: optional "variant:mode,..." subset, e.g. "nano:fast"; default: nano:float32, nano:fast, pro:fast.
    """
    chosen = [tuple(c.split(":")) for c in cases.split(",")] if cases else list(DEFAULT_CASES)
    rows = []
    for variant, mode in chosen:
        cmd = [sys.executable, "-m", "tools.benchmark_sat", "measure", f"--variant={variant}", f"--mode={mode}",
               f"--queries={queries}", f"--size={size}"]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if done.returncode != 0:
            rows.append({"variant": variant, "mode": mode, "error": done.stderr.strip().splitlines()[-1:]})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"measured {variant} {mode}: {rows[-1]}", file=sys.stderr, flush=True)
    table = ["| model | mode | window | Q | seconds | peak RSS (GB) |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            table.append(f"| {r['variant']} | {r['mode']} | - | - | failed: {r['error']} | - |")
        else:
            table.append(f"| {r['variant']} | {r['mode']} | {'x'.join(map(str, r['window']))} | {r['queries']} | "
                         f"{r['seconds']} | {r['peak_rss_gb']} |")
    print("\n".join(table))
    atomic_write_json(output, {"rows": rows, "table": table})
    return rows


if __name__ == "__main__":
    fire.Fire({"run": run, "measure": measure})
