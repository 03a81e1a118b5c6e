"""How much the main job's result depends on the seed: run it for several seeds, print the spread.

    python -m tools.seed_spread --seeds "[0,1,2,3,4]"

Each seed runs ``python -m tools.main_job --seed N --output_dir <output_dir>/seed<N>`` in its own process
(training, inference, scoring, figure), one after the other, so the timings are those of a single job on
this machine. The table gives min / median / max Dice per prompt over the seeds and the job's wall time;
it is what the README's Results section reports. Seeds whose job already finished are read back, not run
again (the main job reuses a finished training).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import fire

from bundles.io.atomic import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parents[1]


def run(seeds: list[int] | tuple[int, ...] = (0, 1, 2, 3, 4), job: str = "ct", output_dir: str | None = None) -> dict:
    """Run the main job once per seed and print min / median / max of each prompt's Dice and of the time.

    Args:
        seeds: the seeds, e.g. --seeds "[0,1,2,3,4]".
        job: the main job ("ct" or "mr").
        output_dir: where each seed's job writes (<output_dir>/seed<N>/) and spread.json goes
            (default demo_output/seeds_<job>).

    Returns the per-seed results and the spread (also written to <output_dir>/spread.json).
    """
    out = Path(output_dir or REPO_ROOT / "demo_output" / f"seeds_{job}").resolve()
    results = {}
    for seed in seeds:
        folder = out / f"seed{int(seed)}"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "tools.main_job", "--job", job, "--seed", str(int(seed)),
                               "--output_dir", str(folder)], cwd=REPO_ROOT)
        summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
        results[int(seed)] = {"exit": done.returncode, "wall_s": round(time.perf_counter() - start, 1),
                              "dice": summary.get("dice", {}), "timings_s": summary.get("timings_s", {})}
    prompts = sorted({p for r in results.values() for p in r["dice"]})
    spread = {}
    for prompt in prompts:
        values = [r["dice"][prompt] for r in results.values() if prompt in r["dice"]]
        spread[prompt] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    times = [r["wall_s"] for r in results.values()]
    spread["wall_s"] = {"min": min(times), "median": statistics.median(times), "max": max(times)}
    atomic_write_json(out / "spread.json", {"seeds": results, "spread": spread})
    print(f"\n{len(results)} seeds {sorted(results)}; per seed: " +
          "; ".join(f"{s}: liver {r['dice'].get('liver')}, spleen {r['dice'].get('spleen')}, {r['wall_s']:.0f} s"
                    for s, r in results.items()))
    print(f"{'':24s} {'min':>8s} {'median':>8s} {'max':>8s}")
    for key, row in spread.items():
        print(f"{key:24s} {row['min']:8.3f} {row['median']:8.3f} {row['max']:8.3f}")
    return {"seeds": results, "spread": spread}


if __name__ == "__main__":
    fire.Fire(run)
