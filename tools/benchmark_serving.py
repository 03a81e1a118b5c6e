"""Click latency of a running server, idle and while a long request runs on another model (p50 / p95).

    python -m tools.serve --studies scans/ --models sat_nano,sam_med3d &       # a server, as annotators use it
    python -m tools.benchmark_serving --url http://127.0.0.1:8000 --image patient_a \\
        --click "[61, 50, 56]" --long_model sat_nano --long_params "{'prompts': ['liver', 'spleen']}"

Sends ``--clicks`` SAM-Med3D click requests one after another (the same object, one more click each time, as
an annotator refines it) first on an idle server, then again while ``--long_model`` computes ``--long_params``
on the same image (started again whenever it ends, so the clicks always compete with it), and prints both
latency distributions and how long each long request took. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import json
import statistics
import threading
import time

import fire
import requests


def _infer(url: str, model: str, image: str, params: dict, timeout: float) -> float:
    """Seconds one ``/infer`` request took (raises on a non-200 answer)."""
    started = time.perf_counter()
    answer = requests.post(f"{url}/infer/{model}", params={"image": image, "output": "image"},
                           files={"params": (None, json.dumps(params))}, timeout=timeout)
    if answer.status_code != 200:
        raise SystemExit(f"error: {model} answered {answer.status_code}: {answer.text[:300]}")
    return time.perf_counter() - started


def _clicks(url: str, model: str, image: str, click: list[int], count: int, client: str) -> list[float]:
    latencies = []
    for i in range(count):
        background = [[max(0, click[0] - 3 - i), click[1], click[2]]]
        latencies.append(_infer(url, model, image, {"foreground": [click], "background": background, "client_id": client}, 120))
    return latencies


def _summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.3f} s, p95 {p95:.3f} s, max {ordered[-1]:.3f} s ({len(ordered)} clicks)"


def benchmark(url: str, image: str, click: tuple[int, int, int], long_model: str, long_params: dict | None = None,
              click_model: str = "sam_med3d", clicks: int = 20) -> None:
    """Measure click latency idle and under a long request (see the module docstring).

    Args:
        url: the server (``http://127.0.0.1:8000``).
        image: an image id of its studies (a file name without extension, or a SeriesInstanceUID).
        click: voxel indices ``[i, j, k]`` of the first click, inside the object.
        long_model: the model that computes meanwhile (a whole-scan SAT or SAMed request).
        long_params: its request values (e.g. ``{'prompts': ['liver']}``).
        click_model: the click model.
        clicks: clicks measured in each phase.
    """
    click = [int(c) for c in click]
    _infer(url, click_model, image, {"foreground": [click], "client_id": "bench-idle"}, 300)  # the image encoding
    idle = _clicks(url, click_model, image, click, clicks, "bench-idle")
    long_seconds: list[float] = []
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            long_seconds.append(_infer(url, long_model, image, long_params or {}, 3600))

    busy = threading.Thread(target=keep_busy, daemon=True)
    _infer(url, click_model, image, {"foreground": [click], "client_id": "bench-load"}, 300)
    busy.start()
    time.sleep(1.0)
    loaded = _clicks(url, click_model, image, click, clicks, "bench-load")
    stop.set()
    busy.join()
    print(f"idle:                      {_summary(idle)}")
    print(f"while {long_model} runs: {_summary(loaded)}")
    print(f"{long_model} requests meanwhile: {', '.join(f'{s:.1f} s' for s in long_seconds)}")


if __name__ == "__main__":
    fire.Fire(benchmark)
