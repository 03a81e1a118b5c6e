"""Benchmark of SAMed (ViT-B at 512) on a volume and of SAM-UNet (ResNet-34, 256) per slice (CPU by default).

    python -m tools.benchmark_samed run [--slices 100] [--official_slices 6] [--device cpu] [--output benchmark_samed.json]

Full-size networks with random weights (speed does not depend on the values) on a synthetic CT volume of
``slices`` axial 512 x 512 slices (a body-shaped phantom with air above and below it: the first and last
fifth of the slices hold only air). Each measurement runs in a fresh subprocess, so its peak RSS
(``ru_maxrss``, building the network included) is its own:

- ``samed_official_loop``: SAMed's ``test_single_volume`` as written: one slice at a time in float32, each
  slice zoomed 512 -> 224 -> 512 (bicubic, scipy), the forward, softmax + argmax, with the official image
  encoder (segment-anything's ``ImageEncoderViT``, as SAMed imports it; installed with the ``test`` extra;
  without its LoRA, a little less work than SAMed's) in front of our prompt encoder and decoder; timed on
  ``official_slices`` slices and scaled to the volume;
- ``samed_bundle`` / ``_bf16`` / ``_bf16_skip``: the bundle's predictor on the whole volume (batches of 8
  slices; float32, bfloat16 autocast, and bf16 skipping the air-only slices, ``skip_outside_body``);
- ``sam_unet_slice``: SAM-UNet ``res34`` per slice (encoder + one box), batch 8, float32.

With ``--device cuda`` the ``_bf16`` modes autocast to float16 (the bundle's CUDA default), timings
synchronize the GPU and each row also holds the peak CUDA memory (``gpu_peak_gb``); the official loop's
zooms stay on the CPU (scipy), as in SAMed's code.

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

from bundles.io.atomic import atomic_write_json
from bundles.precision import resolve_device
from tools.benchmark_clock import Timer, peak_memory

MODES = ("samed_official_loop", "samed_bundle", "samed_bundle_bf16", "samed_bundle_bf16_skip", "sam_unet_slice")


def _volume(slices: int) -> tuple[np.ndarray, np.ndarray]:
    """A (512, 512, slices) HU volume: an elliptic body of soft tissue with a brighter 'liver', air around it;
    the first and last fifth of the slices are air only."""
    r, a = np.meshgrid(np.linspace(-1, 1, 512), np.linspace(-1, 1, 512), indexing="ij")
    body = (r / 0.8) ** 2 + (a / 0.6) ** 2 <= 1
    organ = ((r + 0.3) / 0.3) ** 2 + (a / 0.3) ** 2 <= 1
    plane = np.where(organ, 120.0, np.where(body, 40.0, -1000.0)).astype(np.float32)
    volume = np.repeat(plane[..., None], slices, axis=2)
    air = slices // 5
    volume[..., :air] = -1000.0
    volume[..., slices - air :] = -1000.0
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    return volume, affine


def _measure(mode: str, slices: int, official_slices: int, device: torch.device, overrides: dict) -> dict:
    torch.manual_seed(0)
    with Timer() as setup:
        if mode == "sam_unet_slice":
            from bundles.networks.sam_unet import SAMUNet

            net = SAMUNet.res34().eval().to(device)
            x = torch.randn(8, 3, 256, 256, device=device)
            boxes = torch.tensor([[40.0, 50.0, 180.0, 200.0]] * 8, device=device)
            with torch.inference_mode():
                net(x[:1], boxes=boxes[:1])  # warm-up
                with Timer(device) as timer:
                    net(x, boxes=boxes)
            return {"mode": mode, "per_slice_s": timer.seconds / 8, "slices": 8}

        from bundles.networks.samed import SAMed

        net = SAMed.build("vit_b", **overrides).eval()
        volume, affine = _volume(slices)
    if mode == "samed_official_loop":
        from functools import partial

        from scipy.ndimage import zoom
        from segment_anything.modeling import ImageEncoderViT

        from bundles.samed.preprocessing import scale_ct

        # SAM ViT-B as segment-anything's build_sam_vit_b makes it, at SAMed's 512 input
        net.image_encoder = ImageEncoderViT(
            img_size=512, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4, out_chans=256, qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True, window_size=14, global_attn_indexes=(2, 5, 8, 11),
        ).eval()
        net.to(device)

        scaled = scale_ct(torch.from_numpy(volume)).numpy()
        with torch.no_grad(), Timer(device) as timer:
            for s in range(official_slices):
                x = zoom(zoom(scaled[..., s], 224 / 512, order=3), 512 / 224, order=3)
                inp = torch.from_numpy(x).float()[None, None].repeat(1, 3, 1, 1).to(device)
                torch.softmax(net(inp), dim=1).argmax(dim=1).cpu()
        per_slice = timer.seconds / official_slices
        return {"mode": mode, "per_slice_s": per_slice, "volume_s": per_slice * slices, "slices": official_slices,
                "note": f"timed on {official_slices} slices, scaled to {slices}"}

    from monai.data import MetaTensor

    from bundles.io.grid import ImageGrid
    from bundles.samed.predictor import SlicePredictor

    predictor = SlicePredictor(net, ["organ"] * net.num_classes, device=device, amp=mode != "samed_bundle", batch_size=8,
                               skip_outside_body=mode.endswith("_skip"), progress=False)
    image = MetaTensor(torch.from_numpy(volume)[None], affine=torch.from_numpy(affine))
    grid = ImageGrid(volume.shape, affine, "synthetic")
    with Timer(device) as timer:
        predictor(image, grid, None, None)
    return {"mode": mode, "per_slice_s": timer.seconds / slices, "volume_s": timer.seconds, "slices": slices,
            "setup_s": round(setup.seconds, 1)}


def one(mode: str, slices: int = 100, official_slices: int = 6, device: str = "cpu", overrides: dict | str | None = None) -> None:
    """Run one measurement in this process and print it as JSON (what ``run`` calls per mode).

    Args:
        mode: one of :data:`MODES` (see the module doc).
        slices: axial slices of the synthetic volume (512 x 512 each).
        official_slices: slices the official loop is timed on.
        device: "cpu", "cuda[:N]" or "auto".
        overrides: SAMed network sizes replacing ``vit_b``'s, as a dict or JSON (``SAMed.build`` keyword
            arguments; the tests use tiny ones). Not for ``sam_unet_slice`` or the official loop's encoder.
    """
    target = resolve_device(device)
    extra = json.loads(overrides) if isinstance(overrides, str) else dict(overrides or {})
    row = {**_measure(mode, slices, official_slices, target, extra), "device": str(target)}
    row.update(peak_memory(target))
    print(json.dumps(row))


def run(slices: int = 100, official_slices: int = 6, modes: tuple[str, ...] = MODES, output: str = "benchmark_samed.json",
        device: str = "cpu") -> list[dict]:
    """Every mode in its own subprocess; prints a Markdown table and writes the rows to ``output``.

    Args:
        slices: axial slices of the synthetic volume (512 x 512 each).
        official_slices: slices the official one-at-a-time loop is timed on (then scaled to ``slices``).
        modes: which measurements (see the module doc).
        output: JSON file for the rows.
        device: "cpu" (default), "cuda[:N]" or "auto".
    """
    rows = []
    for mode in modes:
        done = subprocess.run([sys.executable, "-m", "tools.benchmark_samed", "one", mode, f"--slices={slices}",
                               f"--official_slices={official_slices}", f"--device={device}"],
                              capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if done.returncode != 0:
            raise SystemExit(f"error: benchmark mode {mode} failed: {done.stderr.strip().splitlines()[-1]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    atomic_write_json(output, rows)
    print("| mode | s per slice | s per volume | peak RSS GB |\n|---|---:|---:|---:|")
    for row in rows:
        volume = f"{row['volume_s']:.0f}" if "volume_s" in row else "-"
        print(f"| {row['mode']} | {row['per_slice_s']:.2f} | {volume} | {row['peak_rss_gb']:.2f} |")
    return rows


if __name__ == "__main__":
    fire.Fire({"run": run, "one": one})
