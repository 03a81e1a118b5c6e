"""Benchmark of SAM-Med3D clicks: the cached-embedding session vs re-running the whole model per click (CPU by default).

    python -m tools.benchmark_sam_med3d run [--clicks 5] [--amp False] [--device cpu] [--output benchmark_sam_med3d.json]

Full-size ``vit_b_ori`` with random weights (speed does not depend on the values) on patient B's DICOM
series (512 x 512 x 20, 0.98 x 0.98 x 2 mm), clicks on the liver. Two measurements, each in a fresh
subprocess so the peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, building the network included)
is its own:

- ``session``: ``SAMMed3DSession`` as the bundle runs it: ``set_image`` once, then ``add_click`` per click; the
  first click encodes the 128³ window, later clicks run only the prompt encoder and mask decoder on the
  cached embedding, and every click returns the mask on the scan's own grid;
- ``official_loop``: what the official evaluation loop costs per click if each click runs the whole model
  again (image encoder + prompt encoder + decoder on the same window, plus the same upsampling and
  resampling to the scan's grid).

With ``--device cuda`` timings synchronize the GPU, ``--amp True`` autocasts to float16 (bfloat16 on the
CPU) and each row also holds the peak CUDA memory (``gpu_peak_gb``).

Prints a Markdown table and writes the rows as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fire
import numpy as np
import torch

from bundles.data.examples import EXAMPLES, reference_masks
from bundles.io.atomic import atomic_write_json
from bundles.io.readers import read_image
from bundles.networks.sam_med3d import SAMMed3D
from bundles.precision import autocast
from bundles.sam_med3d.preprocessing import point_window_start, znormalize_positive
from bundles.sam_med3d.session import SAMMed3DSession
from bundles.transforms.window_crop import crop_window
from tools.benchmark_clock import Timer, peak_memory

MODES = ("session", "official_loop")


def _liver_clicks(grid, count: int, seed: int) -> list[tuple[int, int, int]]:
    liver = reference_masks(EXAMPLES["ct_dicom_series"], ["liver"], grid)[0]
    idx = np.argwhere(liver)
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in idx[i]) for i in rng.choice(len(idx), size=count, replace=False)]


def measure(mode: str = "session", clicks: int = 5, amp: bool = False, seed: int = 0, device: str = "cpu",
            overrides: dict | str | None = None) -> None:
    """One measurement in this process; prints a JSON row on the last stdout line.

    Args:
        mode: "session" or "official_loop" (see the module doc).
        clicks: clicks on the liver (at least 2: the first encodes, later ones are averaged).
        amp: autocast (float16 on CUDA, bfloat16 on the CPU); the bundle turns it on for CUDA only.
        seed: random seed for weights and click positions.
        device: "cpu", "cuda[:N]" or "auto".
        overrides: network sizes replacing ``vit_b_ori``'s, as a dict or JSON (``SAMMed3D.build`` keyword
            arguments; the tests use tiny ones).
    """
    if mode not in MODES:
        raise SystemExit(f"error: mode must be one of {MODES}")
    if clicks < 2:
        raise SystemExit("error: --clicks must be at least 2 (the first click encodes, later clicks are averaged)")
    torch.manual_seed(seed)
    image, grid = read_image(EXAMPLES["ct_dicom_series"].image)
    extra = json.loads(overrides) if isinstance(overrides, str) else dict(overrides or {})
    session = SAMMed3DSession(SAMMed3D.build("vit_b_ori", **extra), device=device, amp=amp)
    target = session.device
    with Timer(target) as timer:
        session.set_image(image[0], grid, modality="ct")
    set_image_s = timer.seconds
    times = []
    points = _liver_clicks(grid, clicks, seed)
    if mode == "session":
        for voxel in points:
            with Timer(target) as timer:
                session.add_click(voxel, positive=True)
            times.append(timer.seconds)
    else:
        window_start = point_window_start(session.to_model(points[0]), session.size)
        low = None
        label = torch.tensor([[1]], device=target)
        for voxel in points:
            with Timer(target) as timer:
                window = znormalize_positive(crop_window(session.volume, window_start, session.size))[None].to(target)
                point = torch.as_tensor(session.to_model(voxel) - window_start, dtype=torch.float32, device=target).view(1, 1, 3)
                with torch.no_grad(), autocast(target, amp):
                    low = session.network(window, point, label, low).float()
                session.to_grid(session.probabilities(low), session.window_affine(window_start), grid)
            times.append(timer.seconds)
    row = {"mode": mode, "device": str(target), "amp": amp, "volume": list(grid.shape), "set_image_s": round(set_image_s, 2),
           "click_s": [round(t, 3) for t in times], "first_click_s": round(times[0], 2), "later_click_s": round(float(np.mean(times[1:])), 3),
           **peak_memory(target), "threads": torch.get_num_threads()}
    print(json.dumps(row))


def run(clicks: int = 5, amp: bool = False, output: str = "benchmark_sam_med3d.json", device: str = "cpu") -> list[dict]:
    """Both measurements, each in its own process; a Markdown table and ``output`` (JSON).

    Args:
        clicks: clicks on patient B's liver per measurement (at least 2).
        amp: autocast (float16 on CUDA, bfloat16 on the CPU).
        output: JSON file for the rows.
        device: "cpu" (default), "cuda[:N]" or "auto".
    """
    rows = []
    for mode in MODES:
        done = subprocess.run([sys.executable, "-m", "tools.benchmark_sam_med3d", "measure", "--mode", mode, "--clicks", str(clicks),
                               "--amp", str(amp), "--device", device], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if done.returncode != 0:
            raise SystemExit(f"error: measurement {mode} failed: {done.stderr.strip().splitlines()[-1]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    session, loop = rows
    speedup = loop["later_click_s"] / session["later_click_s"]
    print(f"\n| SAM-Med3D vit_b_ori, {session['device']} ({session['threads']} threads){', autocast' if amp else ''} | set_image | first click | later clicks (mean) | peak RSS |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['set_image_s']:.1f} s | {r['first_click_s']:.1f} s | {r['later_click_s']:.3f} s | {r['peak_rss_gb']:.2f} GB |")
    print(f"\nlater clicks: {speedup:.0f}x faster with the cached embedding")
    atomic_write_json(output, {"rows": rows, "later_click_speedup": round(speedup, 1)})
    return rows


if __name__ == "__main__":
    fire.Fire({"run": run, "measure": measure})
