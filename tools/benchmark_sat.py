"""Benchmark of one SAT forward pass: seconds and peak memory, plain float32 vs our fast path (CPU by default).

    python -m tools.benchmark_sat run [--queries 10] [--size 288,288,96] [--device cpu] [--output benchmark_sat.json]

Measurements (random weights; each in a fresh subprocess, so peak RSS is per measurement):
  nano / float32: channels-first float32 under ``torch.no_grad`` (the official recipe on a CPU);
  nano / fast:    channels_last_3d + bfloat16 autocast + ``inference_mode`` (float32 weights);
  pro / fast:     the same with bfloat16 weights (SAT-Pro's float32 forward needs more than 24 GB);
  nano / end_to_end: a whole synthetic 512x512x200 CT (0.8x0.8x1.5 mm phantom) through the bundle's
                  inferer (preprocessing, sliding windows, resampling back onto the input grid), fast path;
                  its row also splits the seconds into the inferer's stages (preprocess, network, resample).
Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the child (includes building the network).
With ``--device cuda`` the fast path autocasts to float16 instead of bfloat16, timings synchronize the GPU
and each row also holds the peak CUDA memory (``gpu_peak_gb``, see ``tools/benchmark_clock.py``).
Prints a Markdown table and writes the rows as JSON.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import fire
import torch

from bundles.engines.stage_times import recording
from bundles.io.atomic import atomic_write_json
from bundles.networks.sat.sat import SAT
from bundles.precision import autocast, channels_last, prepare_for_inference, resolve_device
from tools.benchmark_clock import Timer, peak_memory

#: (variant, mode) pairs measured by ``run``.
DEFAULT_CASES = (("nano", "float32"), ("nano", "fast"), ("pro", "fast"), ("nano", "end_to_end"))


def _parse_size(size: str | Sequence[int], option: str = "--size") -> tuple[int, int, int]:
    values = [int(v) for v in (size.split(",") if isinstance(size, str) else size)]
    if len(values) != 3:
        raise ValueError(f"{option} needs three integers, got {size!r}")
    return values[0], values[1], values[2]


def measure(variant: str = "nano", mode: str = "fast", queries: int = 10, size: str = "288,288,96", seed: int = 0,
            device: str = "cpu", image: str = "512,512,200", overrides: dict | str | None = None) -> None:
    """One measurement in this process; prints a JSON row on the last stdout line.

    Args:
        variant: "nano" or "pro".
        mode: "float32" (plain), "fast" (channels_last_3d + autocast, bfloat16 on the CPU and float16 on
            CUDA, + inference_mode; Pro also with bf16 weights) or "end_to_end" (a whole synthetic CT
            through the bundle's inferer, fast path).
        queries: number of query embeddings Q.
        size: window "X,Y,Z" (each divisible by 32).
        seed: random seed for weights and inputs.
        device: "cpu", "cuda[:N]" or "auto".
        image: "X,Y,Z" of the synthetic CT (0.8 x 0.8 x 1.5 mm) of the end_to_end mode.
        overrides: network sizes replacing the variant's, as a dict or JSON (``SAT.build`` keyword
            arguments; the tests use tiny ones). Default: the variant's own.
    """
    torch.manual_seed(seed)
    roi = _parse_size(size)
    target = resolve_device(device)
    extra = json.loads(overrides) if isinstance(overrides, str) else dict(overrides or {})
    network = SAT.build(variant, roi, **extra).eval()
    if mode == "end_to_end":
        print(json.dumps(_end_to_end(network, roi, queries, variant, target, _parse_size(image, "--image"))))
        return
    image_tensor = torch.randn(1, 1, *roi)
    prompts = torch.randn(1, queries, network.query_dim, device=target)
    if mode == "fast":
        prepare_for_inference(network, target, bfloat16_weights=variant == "pro")
        image_tensor = channels_last(image_tensor.to(target))
        context = contextlib.ExitStack()
        context.enter_context(torch.inference_mode())
        context.enter_context(autocast(target, True))
    elif mode == "float32":
        network.to(target)
        image_tensor = image_tensor.to(target)
        context = torch.no_grad()
    else:
        raise ValueError(f"unknown mode {mode!r}; use 'float32', 'fast' or 'end_to_end'")
    rss_before = peak_memory(target)["peak_rss_gb"]
    with context, Timer(target) as timer:
        logits = network(image_tensor, prompts)
    row = {
        "variant": variant,
        "mode": mode,
        "device": str(target),
        "window": list(roi),
        "queries": queries,
        "seconds": round(timer.seconds, 2),
        **peak_memory(target),
        "rss_before_forward_gb": rss_before,
        "logits": [list(logits.shape), str(logits.dtype)],
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(row))


def _end_to_end(network: SAT, roi: tuple[int, int, int], queries: int, variant: str, device: torch.device,
                shape: tuple[int, int, int]) -> dict:
    """Whole-image inference of a synthetic CT of ``shape`` (0.8 x 0.8 x 1.5 mm) with ``queries`` prompts (fast path)."""
    from monai.data import MetaTensor

    from bundles.data.phantom import make_ct_phantom
    from bundles.io.grid import ImageGrid
    from bundles.sat.inferer import TextPromptedInferer

    phantom = make_ct_phantom(0, shape=shape, spacing=(0.8, 0.8, 1.5))
    image = MetaTensor(torch.from_numpy(phantom.image.astype("float32"))[None], affine=torch.from_numpy(phantom.affine))
    grid = ImageGrid(phantom.image.shape, phantom.affine, source=f"synthetic {'x'.join(map(str, shape))} CT")
    inferer = TextPromptedInferer(network, roi, device=device, amp=True, bfloat16_weights=variant == "pro", progress=False)
    with recording() as stages, Timer(device) as timer:
        masks = inferer(image, grid, torch.randn(queries, network.query_dim), "ct")
    return {
        "variant": variant, "mode": "end_to_end", "device": str(device), "window": list(roi), "queries": queries,
        "image": list(grid.shape), "seconds": round(timer.seconds, 2), **peak_memory(device),
        "masks": list(masks.shape), "threads": torch.get_num_threads(), "stages_s": {k: round(v, 2) for k, v in stages.items()},
    }


def run(queries: int = 10, size: str = "288,288,96", output: str = "benchmark_sat.json", cases: str = "",
        device: str = "cpu") -> list[dict]:
    """Run every measurement in a fresh subprocess, print a Markdown table, write the rows to ``output``.

    Args:
        queries: number of query embeddings Q per forward.
        size: window "X,Y,Z" (each divisible by 32); the bundles use 288,288,96.
        output: JSON file for the rows (written atomically).
        cases: optional "variant:mode,..." subset, e.g. "nano:fast"; default: nano:float32, nano:fast,
            pro:fast, nano:end_to_end.
        device: "cpu" (default), "cuda[:N]" or "auto".
    """
    chosen = [tuple(c.split(":")) for c in cases.split(",")] if cases else list(DEFAULT_CASES)
    rows = []
    for variant, mode in chosen:
        cmd = [sys.executable, "-m", "tools.benchmark_sat", "measure", f"--variant={variant}", f"--mode={mode}",
               f"--queries={queries}", f"--size={size}", f"--device={device}"]
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
