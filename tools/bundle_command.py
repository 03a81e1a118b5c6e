"""Run one ``python -m monai.bundle run`` of a bundle in its folder, printing the command first."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bundles.bundle_configs import run_command


def bundle_run(bundle: Path, configs: list[str], overrides: dict[str, object]) -> float:
    """Run the bundle at ``bundle`` with ``configs`` (relative to it) and ``--key value`` overrides; return
    the seconds it took. A failure ends the calling tool with the bundle's exit status named."""
    command = run_command(configs, overrides)
    shown = " ".join(f'"{c}"' if (" " in c or "{" in c or "[" in c) else c for c in command[1:])
    print(f"\n$ cd {bundle.name} && python {shown}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=bundle)
    if result.returncode != 0:
        raise SystemExit(f"error: the bundle command above failed (exit {result.returncode}); see its last line")
    return time.perf_counter() - start
