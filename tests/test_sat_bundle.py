"""The sat_nano bundle driven through MONAI's bundle runner: train (2 steps) -> resume -> infer -> evaluate.

A tiny network (tests/data/tiny_sat.json on top of configs/demo.json) on synthetic CT phantoms keeps it
fast; every other part is the real code path of the bundle configs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import run

from bundles.data.phantom import make_ct_phantom

BUNDLE = Path(__file__).resolve().parents[1] / "sat_nano"
TINY = str(Path(__file__).resolve().parent / "data" / "tiny_sat.json")
TRAIN = [str(BUNDLE / "configs/train.json"), str(BUNDLE / "configs/demo.json"), TINY]
INFER = [str(BUNDLE / "configs/inference.json"), str(BUNDLE / "configs/demo.json"), TINY]


def _write_phantom(folder: Path, seed: int) -> dict:
    phantom = make_ct_phantom(seed, shape=(96, 80, 24), spacing=(1.6, 1.6, 6.0))
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(phantom.image, phantom.affine), folder / "image.nii.gz")
    nib.save(nib.Nifti1Image(phantom.labels, phantom.affine), folder / "label.nii.gz")
    return {"image": str(folder / "image.nii.gz"), "mask": str(folder / "label.nii.gz"),
            "legend": {str(k): v for k, v in phantom.legend.items()}, "modality": "ct", "dataset": "phantom"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sat_bundle")
    cases = [_write_phantom(root / f"phantom_{i}", seed=i) for i in range(2)]
    (root / "train.jsonl").write_text(json.dumps(cases[0]) + "\n")
    (root / "test.jsonl").write_text(json.dumps({**cases[1], "id": "held_out"}) + "\n")
    overrides = dict(bundle_root=str(BUNDLE), train_data=str(root / "train.jsonl"), model_dir=str(root / "model"),
                     export_dir=str(root / "model"), ckpt_dir=str(root / "ckpt"), tracking_uri=f"sqlite:///{root / 'mlruns.db'}")
    run(config_file=TRAIN, max_steps=2, run_name="first", **overrides)
    return {"root": root, "overrides": overrides, "test_case": cases[1]}


def test_training_exports_weights_and_checkpoint(workspace):
    root = workspace["root"]
    state = torch.load(root / "ckpt" / "last.pt", weights_only=True)
    assert state["step"] == 2
    model = torch.load(root / "model" / "model.pt", weights_only=True)
    assert any(k.startswith("mid_mask_embed_proj") for k in model)  # trained with deep supervision
    assert (root / "model" / "text_encoder.pt").is_file()


def test_training_resumes_at_the_same_step_in_a_new_mlflow_run(workspace):
    root, overrides = workspace["root"], workspace["overrides"]
    first = torch.load(root / "ckpt" / "last.pt", weights_only=True)
    run(config_file=TRAIN, max_steps=3, run_name="resumed", **overrides)
    state = torch.load(root / "ckpt" / "last.pt", weights_only=True)
    assert state["step"] == 3
    assert not torch.equal(state["model"]["network.mask_embed_proj.0.weight"], first["model"]["network.mask_embed_proj.0.weight"])
    client = mlflow.MlflowClient(tracking_uri=overrides["tracking_uri"])
    runs = {r.info.run_name: r for r in client.search_runs(client.get_experiment_by_name("sat_nano_demo").experiment_id)}
    assert {"first", "resumed"} <= set(runs)
    assert runs["resumed"].data.tags["resumed_from_run"] == runs["first"].info.run_id
    steps = [m.step for m in client.get_metric_history(runs["resumed"].info.run_id, "loss")]
    assert steps == [3]


def test_inference_and_evaluation_write_outputs_on_the_input_grid(workspace):
    root, overrides = workspace["root"], workspace["overrides"]
    out = root / "eval"
    run(config_file=[*INFER, str(BUNDLE / "configs/evaluate.json")], bundle_root=str(BUNDLE),
        model_dir=overrides["model_dir"], test_data=str(root / "test.jsonl"), output_dir=str(out),
        input_dict={"cases": str(root / "test.jsonl"), "prompts": ["liver", "Spleen ", "aorta"]})
    source = nib.load(workspace["test_case"]["image"])
    seg = nib.load(out / "held_out" / "seg.nii.gz")
    assert seg.shape == source.shape
    np.testing.assert_array_equal(seg.affine, source.affine)
    legend = json.loads((out / "held_out" / "legend.json").read_text())
    assert legend["labels"] == {"1": "liver", "2": "spleen", "3": "aorta"}
    for name in ("liver", "spleen", "aorta"):
        mask = nib.load(out / "held_out" / legend["files"][name])
        assert mask.shape == source.shape
    metrics = (out / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("case") or "dice" in metrics[0]
    assert len(metrics) == 1 + 3
    assert (out / "dice_per_class.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cache = list((Path(overrides["model_dir"]) / "query_cache").glob("*.pt"))
    assert len(cache) == 1


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monai.bundle", "run", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "case, expected",
    [
        ({"image": "missing.nii.gz", "prompts": ["liver"], "modality": "ct"}, "missing.nii.gz: no such file"),
        ({"image": "IMAGE", "prompts": ["livr"], "modality": "ct"}, "liver"),
        ({"image": "IMAGE", "prompts": ["liver"], "modality": "xray"}, "xray"),
    ],
)
def test_cli_bad_input_exits_nonzero_with_one_clear_line_and_no_output(workspace, case, expected, tmp_path):
    case = {k: (workspace["test_case"]["image"] if v == "IMAGE" else v) for k, v in case.items()}
    out = tmp_path / "out"
    result = _cli(["--config_file", str(INFER), "--model_dir", workspace["overrides"]["model_dir"],
                   "--input_dict", repr(case), "--output_dir", str(out)], cwd=BUNDLE)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last, result.stderr[-2000:]
    assert not out.exists() or not any(out.rglob("*"))


def test_cli_segments_a_dicom_series_and_writes_dicom_seg(workspace, tmp_path):
    from bundles.io.dicom_series import write_dicom_series
    from bundles.io.readers import read_image

    phantom = make_ct_phantom(5, shape=(96, 80, 24), spacing=(1.6, 1.6, 6.0))
    series = tmp_path / "series"
    write_dicom_series(phantom.image, phantom.affine, series, patient_id="PHANTOM5", series_description="phantom")
    out = tmp_path / "out"
    result = _cli(["--config_file", str(INFER), "--model_dir", workspace["overrides"]["model_dir"],
                   "--input_dict", repr({"image": str(series), "prompts": ["liver"], "modality": "ct"}),
                   "--output_dir", str(out)], cwd=BUNDLE)
    assert result.returncode == 0, result.stderr[-3000:]
    _, grid = read_image(series)
    (case,) = [p for p in out.iterdir() if p.is_dir()]
    assert case.name.startswith("PHANTOM5_phantom_")  # named from the series' headers, not its folder
    seg = nib.load(case / "seg.nii.gz")
    assert seg.shape == grid.shape
    np.testing.assert_allclose(seg.affine, grid.affine, atol=1e-5)
    assert (case / "seg.dcm").is_file()


@pytest.mark.parametrize("bundle", ["sat_nano", "sat_pro"])
def test_every_optional_step_of_the_shipped_configs_runs(workspace, tmp_path, bundle):
    """Largest component, bf16 weights, DICOM-SEG and evaluation on in one run of each bundle's inference
    config: a package that one of these steps imports lazily (scikit-image, highdicom, scipy, matplotlib)
    and that the install does not bring fails here, not on a user's machine."""
    from bundles.io.dicom_series import write_dicom_series

    phantom = make_ct_phantom(7, shape=(96, 80, 24), spacing=(1.6, 1.6, 6.0))
    series = tmp_path / "series"
    write_dicom_series(phantom.image, phantom.affine, series, patient_id="PHANTOM7", series_description="phantom")
    nib.save(nib.Nifti1Image(phantom.labels, phantom.affine), tmp_path / "label.nii.gz")
    legend = {str(k): v for k, v in phantom.legend.items() if v in ("liver", "spleen")}
    case = {"id": "case7", "image": str(series), "mask": str(tmp_path / "label.nii.gz"), "legend": legend, "modality": "ct"}
    (tmp_path / "test.jsonl").write_text(json.dumps(case) + "\n")
    root = Path(__file__).resolve().parents[1] / bundle
    configs = [str(root / "configs/inference.json"), str(BUNDLE / "configs/demo.json"), TINY, str(root / "configs/evaluate.json")]
    out = tmp_path / "out"
    run(config_file=configs, bundle_root=str(root), model_dir=workspace["overrides"]["model_dir"],
        test_data=str(tmp_path / "test.jsonl"), output_dir=str(out), keep_largest_component=True,
        bfloat16_weights=True, dicom_seg=True, input_dict={"cases": str(tmp_path / "test.jsonl"), "prompts": ["liver", "spleen"]})
    assert (out / "case7" / "seg.dcm").stat().st_size > 0
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 2
    assert (out / "dice_per_class.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
