"""The inference job as users drive it: the medseg command, the Python API, case lists with a broken case,
skipping finished cases, checks before any model work, and one-line errors for broken environments."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bundles.data.phantom import make_ct_phantom
from bundles.io.cases import parse_cases

REPO = Path(__file__).resolve().parents[1]


def _phantom(path: Path, seed: int) -> Path:
    phantom = make_ct_phantom(seed, shape=(72, 64, 16), spacing=(2.0, 2.0, 6.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(phantom.image, phantom.affine), path)
    return path


def _medseg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bundles.console.main", *args, "--bundle", "sat_nano"], capture_output=True, text=True, timeout=600, cwd=REPO)


def test_medseg_segments_with_the_settings_recorded_in_the_model_folder(tiny_sat_model, tmp_path):
    image = _phantom(tmp_path / "scans" / "abdomen.nii.gz", seed=21)
    result = _medseg("segment", str(image), "-o", str(tmp_path / "out"), "--prompts", "liver", "kidney_left", "IVC",
                     "--model", str(tiny_sat_model), "--device", "cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "> keep_largest_component" not in result.stderr  # no CLI default overrides the model's demo.json setting
    legend = json.loads((tmp_path / "out" / "abdomen" / "legend.json").read_text())
    assert list(legend["labels"].values()) == ["liver", "left kidney", "inferior vena cava"]
    assert set(legend["volumes_ml"]) == {"liver", "left kidney", "inferior vena cava"}
    assert legend["model"].startswith("SAT-Nano demo")
    assert legend["weights"][0]["path"] == str((tiny_sat_model / "model.pt").resolve())
    assert nib.load(tmp_path / "out" / "abdomen" / "seg.nii.gz").shape == nib.load(image).shape
    assert "\r" not in result.stderr and "Loading weights" not in result.stderr  # no progress bars when not a terminal


def test_medseg_reports_a_prompt_typo_before_loading_torch(tmp_path):
    image = _phantom(tmp_path / "a.nii.gz", seed=1)
    code = ("import sys; from bundles.console.main import main; rc = main(['segment', sys.argv[1], '-o', sys.argv[2], "
            "'--bundle', 'sat_nano', '--prompts', 'livr']); print('torch' in sys.modules, rc)")
    result = subprocess.run([sys.executable, "-c", code, str(image), str(tmp_path / "out")], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "1"]
    assert result.stderr.strip() == "error: PromptError: text prompt 'livr' is not in the SAT vocabulary for ct; did you mean: 'liver'?"
    assert not (tmp_path / "out").exists()


def test_a_broken_case_is_reported_and_the_other_cases_still_run(tiny_sat_model, tmp_path):
    from bundles import segment

    good = _phantom(tmp_path / "scans" / "good.nii.gz", seed=3)
    broken = tmp_path / "scans" / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(Exception) as excinfo:
        segment("sat_nano", [broken, good], tmp_path / "out", model_dir=tiny_sat_model, device="cpu", prompts=["liver"], modality="ct")
    from bundles.errors import find_bundle_error

    error = find_bundle_error(excinfo.value)
    assert error is not None and "1 of 2 cases failed" in str(error) and "broken" in str(error)
    assert (tmp_path / "out" / "good" / "seg.nii.gz").is_file()
    assert not (tmp_path / "out" / "broken").exists()
    failures = (tmp_path / "out" / "failures.csv").read_text().splitlines()
    assert failures[0] == "case,image,reason" and failures[1].startswith("broken,")
    with (tmp_path / "out" / "timings.csv").open() as f:
        timings = {row["case"]: row for row in csv.DictReader(f)}
    assert timings["broken"]["status"] == "failed" and timings["good"]["status"] == "done"
    stages = [float(timings["good"][f"{s}_s"]) for s in ("queries", "preprocess", "network", "resample")]
    assert all(t >= 0 for t in stages) and sum(stages) <= float(timings["good"]["model_s"]) + 0.02  # parts of the model time
    assert all(timings["broken"][f"{s}_s"] == "" for s in ("queries", "network"))  # never reached the model

    legend = tmp_path / "out" / "good" / "legend.json"
    stamp = legend.stat().st_mtime_ns
    segment("sat_nano", good, tmp_path / "out", model_dir=tiny_sat_model, device="cpu", settings={"skip_existing": True}, prompts=["liver"],
            modality="ct")
    assert legend.stat().st_mtime_ns == stamp
    segment("sat_nano", good, tmp_path / "out", model_dir=tiny_sat_model, device="cpu", prompts=["liver"], modality="ct")
    assert legend.stat().st_mtime_ns != stamp  # without skip_existing the case is segmented again


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_a_cuda_device_without_a_gpu_is_one_line_before_any_model_work(tiny_sat_model, tmp_path):
    image = _phantom(tmp_path / "a.nii.gz", seed=1)
    result = _medseg("segment", str(image), "-o", str(tmp_path / "out"), "--prompts", "liver", "--model", str(tiny_sat_model),
                     "--device", "cuda:0")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ConfigurationError: --device cuda:0: this machine has no")
    assert "Traceback" not in result.stderr


def test_dicom_seg_on_nifti_input_is_refused_before_inference(tiny_sat_model, tmp_path):
    image = _phantom(tmp_path / "a.nii.gz", seed=1)
    result = _medseg("segment", str(image), "-o", str(tmp_path / "out"), "--prompts", "liver", "--model", str(tiny_sat_model),
                     "--dicom-seg")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "--dicom-seg needs a DICOM series" in last and str(image) in last  # the flag of the command run
    assert not (tmp_path / "out" / "a").exists()


def test_cases_default_to_the_legend_terms_and_folders_of_images_expand(tmp_path):
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"image": "ct.nii.gz", "mask": "seg.nii.gz", "legend": {"2": "spleen", "1": "liver"},
                                 "modality": "ct"}) + "\n")
    (case,) = parse_cases({"cases": str(cases)})
    from bundles.sat.prompts import TextPromptCheck
    from bundles.sat.vocabulary import load_sat_vocabulary

    assert TextPromptCheck(load_sat_vocabulary())(case).terms == ["liver", "spleen"]
    for name in ("b.nii.gz", "a.nrrd", "notes.txt"):
        (tmp_path / "folder" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "folder" / name).write_bytes(b"")
    expanded = parse_cases({"image": str(tmp_path / "folder"), "prompts": ["liver"], "modality": "ct"})
    assert [c.id for c in expanded] == ["a", "b"]
    (tmp_path / "folder" / "dicom").mkdir()  # a series' parent holding a label map: one case, never the label map
    (parent,) = parse_cases({"image": str(tmp_path / "folder"), "prompts": ["liver"], "modality": "ct"})
    assert parent.image == tmp_path / "folder"


def test_aliases_take_totalsegmentator_names_and_abbreviations():
    from bundles.errors import PromptError
    from bundles.sat.vocabulary import load_sat_vocabulary

    vocabulary = load_sat_vocabulary()
    assert vocabulary.match(["kidney_left", "IVC", "Gall Bladder"], "ct") == ["left kidney", "inferior vena cava", "gallbladder"]
    with pytest.raises(PromptError, match="svc"):
        vocabulary.match(["SVC"], "mri")  # superior vena cava is not in SAT's MR vocabulary: no alias there


def test_the_query_cache_moves_to_the_user_cache_when_the_model_folder_is_read_only(tmp_path, monkeypatch):
    import torch

    from bundles.sat.query_cache import QueryEmbeddingCache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "usercache"))
    blocker = tmp_path / "model_dir_is_a_file"
    blocker.write_text("")
    cache = QueryEmbeddingCache(blocker / "query_cache", "encoder-0123")

    class Encoder(torch.nn.Module):
        def forward(self, terms, modality):
            return torch.ones(len(terms), 4)

    cache.get(Encoder(), ["liver"], "ct")
    assert (tmp_path / "usercache" / "medseg-bundles" / "query_cache" / "encoder-0123.pt").is_file()


def test_unexpected_errors_and_missing_packages_are_one_line_with_the_traceback_in_a_file(tmp_path):
    code = ("import sys; from bundles.errors import install_excepthook; install_excepthook(sys.argv[1]); "
            "exec(sys.argv[2])")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out"), "raise RuntimeError('deep inside torch\\nmore')"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: unexpected RuntimeError: deep inside torch (full traceback in ")
    assert "Traceback" in (tmp_path / "out" / "error.log").read_text()
    missing = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out"), "raise RuntimeError('Skimage.measure required.')"],
                             capture_output=True, text=True)
    assert missing.stderr.strip().startswith("error: the package scikit-image is not installed: pip install scikit-image")


def test_the_python_api_returns_the_masks_the_job_writes(tiny_sat_model, tmp_path):
    """``bundles.segment`` in memory and to a folder run the same prompt check and predictor from the bundle's
    configs: the same masks, on the input's own grid."""
    from bundles import segment
    from bundles.errors import PromptError

    image = _phantom(tmp_path / "scans" / "abdomen.nii.gz", seed=5)
    masks, _, grid = segment("sat_nano", image, model_dir=tiny_sat_model, device="cpu", prompts=["Liver", "spleen"], modality="ct")
    source = nib.load(image)
    assert masks.shape == (2, *source.shape) and masks.dtype == bool
    np.testing.assert_allclose(grid.affine, source.affine, atol=1e-5)
    segment("sat_nano", image, tmp_path / "out", model_dir=tiny_sat_model, device="cpu", prompts=["liver", "spleen"], modality="ct")
    legend = json.loads((tmp_path / "out" / "abdomen" / "legend.json").read_text())
    for mask, term in zip(masks, ["liver", "spleen"]):
        written = np.asarray(nib.load(tmp_path / "out" / "abdomen" / legend["files"][term]).dataobj) > 0
        np.testing.assert_array_equal(mask, written)
    with pytest.raises(PromptError, match="livr"):
        segment("sat_nano", image, model_dir=tiny_sat_model, device="cpu", prompts=["livr"], modality="ct")
