"""SAT's opt-in ``fit`` tiling against the standard (official) windows: seconds, peak memory, agreement.

    python -m tools.benchmark_sat_tiling run [--model_dir demo_output/ct/model] [--output benchmark_sat_tiling.json]

For each scan (patients A and B (CT), C (MR), the MNI152 brain and the synthetic CT phantom) and each tiling, a
fresh subprocess segments the scan with the model and its own configs (``bundles.segment``: read, predict,
masks on the input grid), prompted with the scan's reference classes (A, B, C: the CT / MR job's nine
organs). Reported: seconds of the whole call (model loading excluded), peak RSS of the process
(``ru_maxrss``, model included), the windows the network ran, per-organ Dice of the fit masks against the
standard masks (agreement, not accuracy) and the mean Dice of each tiling against the reference masks (organs
the reference holds). Prints Markdown tables and writes JSON. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fire
import nibabel as nib
import numpy as np

from bundles.io.atomic import atomic_write_json

TILINGS = ("standard", "fit")
CASES = ("patient_a", "patient_b", "patient_c", "mni", "phantom")


def _scan(name: str, work: Path) -> tuple[str, dict[int, str], str, str]:
    """``(image path, legend value -> term, reference label map path, modality)`` of a scan ``name``."""
    from bundles.data.examples import EXAMPLES
    from tools.main_job import JOBS

    examples = {"patient_a": ("ct_abdomen_pelvis", "ct"), "patient_b": ("ct_dicom_series", "ct"), "patient_c": ("mr_abdomen_small", "mr")}
    if name in examples:
        key, job = examples[name]
        case = EXAMPLES[key]
        legend = {v: t for v, t in case.legend.items() if t in JOBS[job].prompts}
        return str(case.image), legend, str(case.reference), case.modality
    if name == "mni":
        from bundles.data.mni import make_mni_case

        made, modality = make_mni_case(), "mri"
    else:
        from bundles.data.phantom import make_ct_phantom

        made, modality = make_ct_phantom(0), "ct"
    image, labels = work / f"{name}.nii.gz", work / f"{name}_labels.nii.gz"
    nib.save(nib.Nifti1Image(made.image.astype(np.float32), made.affine), image)
    nib.save(nib.Nifti1Image(made.labels.astype(np.uint8), made.affine), labels)
    return str(image), dict(made.legend), str(labels), modality


def measure(image: str, terms_file: str, modality: str, tiling: str, model_dir: str, masks_out: str) -> None:
    """One scan, one tiling, in this process (the prompts: a JSON list in ``terms_file``); prints one JSON line
    (seconds, peak RSS, windows) and saves the masks."""
    from bundles.engines.loaded_bundle import LoadedBundle
    from bundles.engines.predict_case import predict_case

    loaded = LoadedBundle("sat_nano", model_dir, "cpu", {"tiling": tiling, "progress": False})
    loaded.component("predictor")  # the model loads outside the timing
    started = time.perf_counter()
    done = predict_case(loaded, {"image": image, "prompts": json.loads(Path(terms_file).read_text()), "modality": modality})
    seconds = time.perf_counter() - started
    inferer = loaded.component("inferer")
    np.savez_compressed(masks_out, masks=done.masks)
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                      "windows": inferer.windows_run + inferer.windows_skipped, "windows_run": inferer.windows_run}))


def _dice(a: np.ndarray, b: np.ndarray) -> float | None:
    total = int(a.sum()) + int(b.sum())
    return None if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def run(model_dir: str = "demo_output/ct/model", output: str = "benchmark_sat_tiling.json", cases: tuple[str, ...] = CASES) -> None:
    """Measure every scan of ``cases`` with both tilings (one subprocess each), print the tables, write ``output``.

    Args:
        model_dir: the SAT-Nano model (``python -m tools.main_job`` trains the demo model into demo_output/ct/model).
        output: JSON file receiving the rows.
        cases: scans among patient_a, patient_b, patient_c, mni, phantom.
    """
    from bundles.io.readers import read_image
    from bundles.io.reference_masks import load_reference_masks

    rows = []
    with tempfile.TemporaryDirectory(prefix="tiling-") as tmp:
        work = Path(tmp)
        for name in cases:
            image, legend, reference, modality = _scan(name, work)
            terms = list(dict.fromkeys(legend.values()))
            terms_file = work / f"{name}_terms.json"
            terms_file.write_text(json.dumps(terms))
            runs = {}
            for tiling in TILINGS:
                masks_file = work / f"{name}_{tiling}.npz"
                command = [sys.executable, "-m", "tools.benchmark_sat_tiling", "measure", image, str(terms_file), modality, tiling,
                           model_dir, str(masks_file)]
                result = subprocess.run(command, capture_output=True, text=True)
                if result.returncode != 0:
                    raise SystemExit(f"error: {name} / {tiling} failed: {result.stderr.strip().splitlines()[-1:]}")
                runs[tiling] = json.loads(result.stdout.strip().splitlines()[-1]) | {"masks": np.load(masks_file)["masks"]}
            _, grid = read_image(image)
            refs = load_reference_masks(reference, legend, terms, grid)
            agreement = {t: _dice(runs["fit"]["masks"][i], runs["standard"]["masks"][i]) for i, t in enumerate(terms)}
            present = [i for i, ref in enumerate(refs) if ref.any()]
            for tiling in TILINGS:
                vs_ref = [_dice(runs[tiling]["masks"][i], refs[i]) or 0.0 for i in present]
                row = {k: v for k, v in runs[tiling].items() if k != "masks"}
                rows.append({"case": name, "tiling": tiling, **row,
                             "dice_vs_reference_mean": round(statistics.mean(vs_ref), 3) if vs_ref else None,
                             "agreement_with_standard": {t: None if d is None else round(d, 3) for t, d in agreement.items()}})
            print(f"{name}: standard {runs['standard']['seconds']} s, fit {runs['fit']['seconds']} s", flush=True)
    print("\n| scan | tiling | windows | seconds | peak RSS GB | mean Dice vs reference | agreement with standard: min / median Dice |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        values = [d for d in r["agreement_with_standard"].values() if d is not None]
        spread = f"{min(values):.3f} / {statistics.median(values):.3f}" if values and r["tiling"] == "fit" else "-"
        print(f"| {r['case']} | {r['tiling']} | {r['windows']} | {r['seconds']} | {r['peak_rss_gb']} | {r['dice_vs_reference_mean']} | {spread} |")
    atomic_write_json(Path(output), {"rows": rows, "model_dir": str(Path(model_dir).resolve()), "date": time.strftime("%Y-%m-%d")})


if __name__ == "__main__":
    fire.Fire({"run": run, "measure": measure})
