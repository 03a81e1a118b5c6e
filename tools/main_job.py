"""README command 1: train a small SAT on a real scan, segment a real scan, score it, draw it
(``--job clicks``: the same for SAM-Med3D with simulated clicks, see ``tools/clicks_job.py``).

``python -m tools.main_job`` (the CT job, default) trains on patient A (abdominal-pelvic CT, NIfTI) and
segments patient B, a different person (upper-abdomen contrast CT, 20-file DICOM series).
``python -m tools.main_job --job mr`` trains and segments patient C (abdominal MR): there is no second MR
patient here, so that picture shows the MR path (percentile normalisation, LPS grid in and out), not
generalisation.

Steps, each a plain ``python -m monai.bundle run`` of the ``sat_nano`` bundle (the commands are printed so
you can rerun any of them by hand):

1. write the dataset lists from ``data/examples`` (reference masks = TotalSegmentator predictions, see
   ``data/examples/NOTICE``, mapped to SAT vocabulary terms);
2. train the demo model (``configs/train.json`` + ``configs/demo.json``: a tiny SAT with the offline MiniLM
   text encoder, 3 mm grid); a finished training is reused, an interrupted one resumes;
3. segment the test scan with text prompts (``configs/inference.json`` + ``configs/demo.json``): multi-label
   NIfTI on the scan's own grid, one file per prompt, the legend (and DICOM-SEG for DICOM input); Dice,
   NSD and HD95 against the reference masks compared in world coordinates;
4. draw axial and coronal slices with predicted (solid) and reference (dashed) contours.

With ``--official_model_dir`` it skips training and runs step 3 with converted official weights instead
(``configs/inference.json`` alone: 1x1x3 mm, 288x288x96 windows).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import fire
import nibabel as nib
import numpy as np

from bundles.data.examples import EXAMPLES, ExampleCase, reference_masks
from bundles.engines.run_identity import code_version
from bundles.io.atomic import atomic_write, atomic_write_json
from bundles.io.readers import read_image
from bundles.sam_unet.sa_med2d import TRAIN_INDEX, write_sa_med2d
from bundles.visualize.overlay import DEFAULT_CT_WINDOW, save_overlay_figure
from tools.bundle_command import bundle_run
from tools.clicks_job import run_clicks

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Liver Dice below which the CT job reports a broken pipeline (a floor that catches a broken pipeline).
LIVER_DICE_FLOOR = 0.6
#: The same for box-prompted SAM-UNet, which is told where each organ is.
SAM_UNET_LIVER_DICE_FLOOR = 0.8


@dataclass(frozen=True)
class Job:
    """One main job of ``bundle``: train on ``train`` (reference masks of ``prompts``), segment and score ``test``.
    ``prompted``: the cases carry the prompts (SAT's text terms); a prompt-free model (SAMed) segments its
    classes, which are ``prompts`` here, without being told."""

    train: tuple[str, ...]
    test: str
    test_id: str
    prompts: tuple[str, ...]
    window: tuple[float, float] | None
    liver_floor: float | None
    bundle: str = "sat_nano"
    prompted: bool = True
    official: str = "official SAT-Nano weights"
    train_format: str = "cases"  # "sa_med2d": the training cases are written as an SA-Med2D folder first (SAM-UNet)
    test_fields: tuple[tuple[str, object], ...] = ()  # extra fields of the test case (SAM-UNet: boxes from its mask)


#: CT: liver, spleen, kidneys, stomach and aorta, plus those in view on B that a tiny model learns in minutes; the kidneys
#: and the gallbladder are NOT in B's 40 mm slab, so their masks should come back empty (Dice 1 if so).
JOBS = {
    "ct": Job(("ct_abdomen_pelvis",), "ct_dicom_series", "patient_b",
              ("liver", "spleen", "left kidney", "right kidney", "stomach", "aorta", "pancreas", "inferior vena cava", "gallbladder"),
              DEFAULT_CT_WINDOW, LIVER_DICE_FLOOR),
    "mr": Job(("mr_abdomen_small",), "mr_abdomen_small", "patient_c",
              ("liver", "spleen", "left kidney", "right kidney", "stomach", "aorta", "pancreas", "inferior vena cava", "gallbladder"),
              None, None),
    # SAMed's eight Synapse organs in the official label order (samed_lora/configs/inference.json class_names)
    "samed": Job(("ct_abdomen_pelvis",), "ct_dicom_series", "patient_b",
                 ("aorta", "gallbladder", "left kidney", "right kidney", "liver", "pancreas", "spleen", "stomach"),
                 DEFAULT_CT_WINDOW, LIVER_DICE_FLOOR, bundle="samed_lora", prompted=False, official="official SAMed weights"),
    # SAM-UNet: boxes from the reference masks of B on every slice where an organ appears
    "sam_unet": Job(("ct_abdomen_pelvis",), "ct_dicom_series", "patient_b",
                    ("liver", "spleen", "left kidney", "right kidney", "stomach", "aorta", "pancreas", "gallbladder"),
                    DEFAULT_CT_WINDOW, SAM_UNET_LIVER_DICE_FLOOR, bundle="sam_unet", prompted=False, official="SAM-UNet weights given",
                    train_format="sa_med2d", test_fields=(("boxes_from_mask", True),)),
}


def _case_line(case: ExampleCase, case_id: str, prompts: tuple[str, ...], prompted: bool = True) -> dict:
    legend = {value: term for value, term in case.legend.items() if term in prompts}
    line = {"id": case_id, "image": str(case.image), "mask": str(case.reference), "legend": legend,
            "modality": case.modality, "dataset": case.key}
    return {**line, "prompts": list(prompts)} if prompted else line


def run(job: str = "ct", output_dir: str | None = None, max_steps: int | None = None, seed: int = 0, device: str = "auto",
        official_model_dir: str | None = None) -> None:
    """Run a main job end to end and print its Dice table.

    Args:
        job: "ct" (SAT: train on patient A, test on patient B's DICOM series), "mr" (SAT on patient C),
            "clicks" (SAM-Med3D: train on patient A, 1..5 simulated clicks on patient B's liver and spleen) or
            "samed" (SAMed, prompt-free: train on patient A, segment patient B's eight Synapse organs) or
            "sam_unet" (SAM-UNet: train on patient A's slices, segment patient B with boxes from its reference masks).
        output_dir: where data lists, model, segmentations, report and figure go (default demo_output/<job>).
        max_steps: training steps of the demo model (default: configs/demo.json).
        seed: random seed of the demo training (network initialisation, crop sampling, augmentation); the same
            seed on the same machine and library versions gives the same weights and the same Dice.
        device: "auto" (CUDA when available), "cpu" or "cuda:0".
        official_model_dir: folder with converted official weights (SAT-Nano: model.pt, text_encoder.pt,
            text_tower/; SAM-Med3D for --job clicks, SAMed for --job samed: model.pt; SAM-UNet, which has no
            official weights: a model.pt trained elsewhere): skip training and use them.

    Writes ``<output_dir>/summary.json`` (weights, timings, Dice per prompt, paths).
    """
    if job not in JOBS and job != "clicks":
        raise SystemExit(f"error: unknown job {job!r}; choose one of {sorted([*JOBS, 'clicks'])}")
    out = Path(output_dir or REPO_ROOT / "demo_output" / job).resolve()
    if job == "clicks":
        run_clicks(out, max_steps, seed, device, official_model_dir)
        return
    spec = JOBS[job]
    bundle = REPO_ROOT / spec.bundle
    test_case = EXAMPLES[spec.test]
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    train_list, test_list = data / "train.jsonl", data / "test.jsonl"
    lists = {train_list: [_case_line(EXAMPLES[key], key, spec.prompts, spec.prompted) for key in spec.train],
             test_list: [{**_case_line(test_case, spec.test_id, spec.prompts, spec.prompted), **dict(spec.test_fields)}]}
    for path, lines in lists.items():
        text = "".join(json.dumps(line) + "\n" for line in lines)
        atomic_write(path, lambda tmp, text=text: tmp.write_text(text))

    timings: dict[str, float] = {}
    common = {"bundle_root": str(bundle), "device": device}
    train_data = train_list
    if spec.train_format == "sa_med2d" and official_model_dir is None:
        train_data = data / "sa_med2d"
        if not (train_data / TRAIN_INDEX).is_file():
            counts = write_sa_med2d(train_list, train_data)
            print(f"training slices written as SA-Med2D: {counts['images']} images, {counts['masks']} masks in {train_data}")
    if official_model_dir is None:
        # one training folder per seed and code version: a rerun reuses (or resumes) exactly its own run
        run_dir = out / "train" / f"seed{int(seed)}-{code_version().replace('+', '-')}"
        model_dir = out / "model"  # the latest demo model, at a stable path the README's commands use
        overrides = {**common, "train_data": str(train_data), "ckpt_dir": str(run_dir), "export_dir": str(model_dir),
                     "reuse_finished": True,
                     "tracking_uri": f"sqlite:///{out / 'mlruns.db'}", "run_name": f"main-job-{job}-{time.strftime('%Y%m%d-%H%M%S')}"}
        overrides["seed"] = int(seed)
        if max_steps is not None:
            overrides["max_steps"] = int(max_steps)
        timings["train_s"] = bundle_run(bundle, ["configs/train.json", "configs/demo.json"], overrides)
        infer_configs = ["configs/inference.json", "configs/demo.json"]
        weights = f"demo model trained here on {' + '.join(spec.train)}"
    else:
        model_dir = Path(official_model_dir).resolve()
        infer_configs = ["configs/inference.json"]
        weights = spec.official
    results = out / "segmentation"
    timings["inference_s"] = bundle_run(bundle,
        infer_configs, {**common, "model_dir": str(model_dir), "input_dict": {"cases": str(test_list)}, "output_dir": str(results)}
    )

    start = time.perf_counter()
    image, grid = read_image(test_case.image)
    legend = json.loads((results / spec.test_id / "legend.json").read_text())
    prompts = list(spec.prompts)
    pred = np.stack([np.asarray(nib.load(results / spec.test_id / legend["files"][t]).dataobj) > 0 for t in prompts])
    ref = reference_masks(test_case, prompts, grid)
    figure = save_overlay_figure(
        np.asarray(image[0]), grid, pred, ref, prompts, out / "overlay.png",
        window=spec.window, title=f"{spec.test}: prediction (solid) vs reference (dashed); weights: {weights}",
    )
    timings["figure_s"] = time.perf_counter() - start

    with (results / "metrics.csv").open() as f:
        dice = {row["class"]: round(float(row["dice"]), 3) for row in csv.DictReader(f)}
    summary = {"job": job, "seed": int(seed), "weights": weights, "timings_s": {k: round(v, 1) for k, v in timings.items()}, "dice": dice,
               "figure": str(figure), "outputs": str(results / spec.test_id)}
    atomic_write_json(out / "summary.json", summary)
    print(f"\nweights: {weights}")
    print(f"outputs (on the scan's own grid): {results / spec.test_id}")
    print(f"report: {results / 'summary.md'}   figure: {figure}")
    print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    if spec.liver_floor is not None:
        ok = dice["liver"] > spec.liver_floor
        print(f"liver Dice: {dice['liver']:.3f} (floor {spec.liver_floor}) {'OK' if ok else 'BELOW THE FLOOR (see Results in README.md for how each demo does over seeds)'}")
        if not ok:
            raise SystemExit(1)


if __name__ == "__main__":
    fire.Fire(run)
