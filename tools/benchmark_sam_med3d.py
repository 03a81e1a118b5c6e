"""CPU benchmark of SAM-Med3D clicks: the cached-embedding session vs re-running the whole model per click.

    python -m tools.benchmark_sam_med3d run [--clicks 5] [--amp False] [--output benchmark_sam_med3d.json]

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

Prints a Markdown table and writes the rows as JSON.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
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

MODES = ("session", "official_loop")


def _liver_clicks(grid, count: int, seed: int) -> list[tuple[int, int, int]]:
    liver = reference_masks(EXAMPLES["ct_dicom_series"], ["liver"], grid)[0]
    idx = np.argwhere(liver)
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in idx[i]) for i in rng.choice(len(idx), size=count, replace=False)]


def measure(mode: str = "session", clicks: int = 5, amp: bool = False, seed: int = 0) -> None:
    """One measurement in this process; prints a JSON row on the last stdout line."""
    if mode not in MODES:
        raise SystemExit(f"error: mode must be one of {MODES}")
    torch.manual_seed(seed)
    image, grid = read_image(EXAMPLES["ct_dicom_series"].image)
    session = SAMMed3DSession(SAMMed3D.vit_b_ori(), device="cpu", amp=amp)
    start = time.perf_counter()
    session.set_image(image[0], grid, modality="ct")
    set_image_s = time.perf_counter() - start
    times = []
    points = _liver_clicks(grid, clicks, seed)
    if mode == "session":
        for voxel in points:
            start = time.perf_counter()
            session.add_click(voxel, positive=True)
            times.append(time.perf_counter() - start)
    else:
        window_start = point_window_start(session.to_model(points[0]), session.size)
        low = None
        for voxel in points:
            start = time.perf_counter()
            window = znormalize_positive(crop_window(session.volume, window_start, session.size))[None]
            point = torch.as_tensor(session.to_model(voxel) - window_start, dtype=torch.float32).view(1, 1, 3)
            with torch.no_grad(), autocast(session.device, amp):
                low = session.network(window, point, torch.tensor([[1]]), low).float()
            session.to_grid(session.probabilities(low), session.window_affine(window_start), grid)
            times.append(time.perf_counter() - start)
    row = {"mode": mode, "amp": amp, "set_image_s": round(set_image_s, 2), "click_s": [round(t, 3) for t in times],
           "first_click_s": round(times[0], 2), "later_click_s": round(float(np.mean(times[1:])), 3),
           "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
           "threads": torch.get_num_threads()}
    print(json.dumps(row))


def run(clicks: int = 5, amp: bool = False, output: str = "benchmark_sam_med3d.json") -> list[dict]:
    """Both measurements, each in its own process; a Markdown table and ``output`` (JSON)."""
    rows = []
    for mode in MODES:
        done = subprocess.run([sys.executable, "-m", "tools.benchmark_sam_med3d", "measure", "--mode", mode, "--clicks", str(clicks),
                               "--amp", str(amp)], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if done.returncode != 0:
            raise SystemExit(f"error: measurement {mode} failed: {done.stderr.strip().splitlines()[-1]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    session, loop = rows
    speedup = loop["later_click_s"] / session["later_click_s"]
    print(f"\n| SAM-Med3D vit_b_ori, CPU ({session['threads']} threads){', bf16 autocast' if amp else ''} | set_image | first click | later clicks (mean) | peak RSS |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['set_image_s']:.1f} s | {r['first_click_s']:.1f} s | {r['later_click_s']:.3f} s | {r['peak_rss_gb']:.2f} GB |")
    print(f"\nlater clicks: {speedup:.0f}x faster with the cached embedding")
    atomic_write_json(output, {"rows": rows, "later_click_speedup": round(speedup, 1)})
    return rows


if __name__ == "__main__":
    fire.Fire({"run": run, "measure": measure})
