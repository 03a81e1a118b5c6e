"""Cohort inference (``configs/batch_inference.json`` + ``configs/mgpu_inference.json``) with a tiny SAMed on
phantoms: a 2-process gloo run segments every good case exactly once and lists the unreadable one; a run
killed part-way and started again skips the finished cases and writes the rest byte for byte as before; a
folder holding two DICOM series gives two cases; shards and ranks split the case list without overlap."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from bundles.engines.case_shares import CaseShare, parse_shard
from bundles.engines.stage_times import recording, stage
from bundles.errors import ConfigurationError
from bundles.io.case_folder import find_cases
from bundles.io.cases import parse_cases
from bundles.io.dicom_series import write_dicom_series
from bundles.io.readers import read_image
from tests.test_core_toy_family import _oblique_lps_phantom
from tests.test_samed_network import tiny_samed

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "samed_lora"
CONFIGS = ["configs/inference.json", str(REPO / "tests" / "data" / "tiny_samed.json"), "configs/batch_inference.json"]
GOOD = ["p1_toy", "p2_toy", "p3_toy", "p4_toy", "p5_toy", "p6_toy"]
SLOW = "p4_toy"  #: the long case a run is killed in


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict[str, Path]:
    """Six phantoms (shifted copies, in sub-folders ``p1`` .. ``p6``; p4 3000 slices long), one truncated NIfTI,
    a tiny model."""
    root = tmp_path_factory.mktemp("cohort")
    image, _ = _oblique_lps_phantom(root)
    source = nib.load(image)
    scans = root / "scans"
    for i, name in enumerate(GOOD):
        folder = scans / name.split("_")[0]
        folder.mkdir(parents=True)
        volume = np.roll(np.asarray(source.dataobj), 2 * i, axis=0)
        if name == SLOW:  # 150 times the slices: segmenting it takes seconds, not milliseconds
            volume = np.tile(volume, (1, 1, 150))
        nib.save(nib.Nifti1Image(volume, source.affine), folder / "toy.nii.gz")
    (scans / "p0_broken.nii.gz").write_bytes(image.read_bytes()[:200])  # truncated: unreadable
    torch.manual_seed(0)
    models = root / "models"
    models.mkdir()
    torch.save(tiny_samed(num_classes=2, depth=2, global_attn_indexes=(1,)).state_dict(), models / "model.pt")
    return {"scans": scans, "models": models}


def _command(cohort: dict[str, Path], output: Path, *, processes: int = 1) -> list[str]:
    configs = CONFIGS + (["configs/mgpu_inference.json"] if processes > 1 else [])
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] \
        if processes > 1 else [sys.executable]
    return [*launcher, "-m", "monai.bundle", "run", "--config_file", str(configs), "--input_dir", str(cohort["scans"]),
            "--output_dir", str(output), "--model_dir", str(cohort["models"]), "--progress", "False"]


@pytest.fixture(scope="module")
def gloo_run(cohort, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    output = tmp_path_factory.mktemp("gloo") / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(_command(cohort, output, processes=2), cwd=BUNDLE, capture_output=True, text=True, env=env, timeout=600)
    return done, output


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_two_gloo_processes_segment_every_good_case_once_and_list_the_bad_one(gloo_run):
    done, output = gloo_run
    assert done.returncode != 0, "a failed case must make the run exit non-zero"
    # the ranks print one line each; the one traceback is torchrun's own report that a rank exited non-zero
    assert done.stderr.count("Traceback") == 1 and "ChildFailedError" in done.stderr, done.stderr[-3000:]
    assert done.stderr.count("error: CaseFailures: 1 of 7 cases failed") == 2
    failures = _rows(output / "failures.csv")
    assert [r["case"] for r in failures] == ["p0_broken"] and "p0_broken.nii.gz" in failures[0]["reason"]
    timings = {r["case"]: r for r in _rows(output / "timings.csv")}
    assert sorted(timings) == sorted(["p0_broken", *GOOD])
    assert all(timings[c]["status"] == "done" for c in GOOD) and timings["p0_broken"]["status"] == "failed"
    assert {timings[c]["rank"] for c in GOOD} == {"0", "1"}  # both ranks worked
    logs = done.stdout + done.stderr
    for case in GOOD:  # each case's log line ("<case>: <s> s (read ...") appears exactly once over both ranks
        assert logs.count(f"{case}: ") == 1 and f"{case}: complete outputs exist" not in logs, case
        written = nib.load(output / case / "seg.nii.gz")
        assert written.shape == (48, 40, 3000 if case == SLOW else 20) and (output / case / "legend.json").is_file()
    assert not (output / "p0_broken").exists()
    assert "cases: 6 done, 0 skipped (outputs existed), 1 failed" in done.stdout


def test_a_killed_run_restarts_skipping_finished_cases_with_identical_outputs(cohort, gloo_run, tmp_path):
    _, reference = gloo_run
    output = tmp_path / "out"
    process = subprocess.Popen(_command(cohort, output), cwd=BUNDLE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and len(list(output.glob("*/legend.json"))) < 3:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # p1 .. p3 are written; p4 (3000 slices) takes seconds
    process.wait()
    finished = sorted(p.parent.name for p in output.glob("*/legend.json"))
    assert finished == ["p1_toy", "p2_toy", "p3_toy"], f"the run should have been killed in p4: {finished}"
    done = subprocess.run(_command(cohort, output), cwd=BUNDLE, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and [r["case"] for r in _rows(output / "failures.csv")] == ["p0_broken"]
    timings = {r["case"]: r["status"] for r in _rows(output / "timings.csv")}
    assert sorted(c for c, s in timings.items() if s == "skipped") == finished
    assert sorted(c for c, s in timings.items() if s == "done") == ["p4_toy", "p5_toy", "p6_toy"]
    assert "the outputs of the 3 other case(s) were written" in done.stderr
    for case in GOOD:
        files = sorted((reference / case).glob("*.nii.gz"))
        assert files and all((output / case / f.name).read_bytes() == f.read_bytes() for f in files), case


def test_a_folder_holding_two_dicom_series_gives_two_cases_each_read_alone(tmp_path):
    volume = np.full((16, 12, 5), 40.0)
    volume[4:10, 3:8, 1:4] = 300.0
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    mixed = tmp_path / "scans" / "mixed"
    mixed.mkdir(parents=True)
    for patient, data in (("A", volume), ("B", volume[:, :, :4] + 100)):
        for file in write_dicom_series(data, affine, tmp_path / patient, patient_id=patient):
            shutil.move(file, mixed / f"{patient}_{file.name}")
    (mixed / "notes.txt").write_text("not an image")
    found = find_cases(tmp_path / "scans")
    assert [c["id"].split("_")[0] for c in found] == ["A", "B"] and all(c["image"] == str(mixed) for c in found)
    cases = parse_cases({"prompts": None}, tmp_path / "scans")
    shapes = [read_image(c.image, series_uid=c.series_uid)[0].shape for c in cases]
    assert shapes == [(1, 16, 12, 5), (1, 16, 12, 4)]
    with pytest.raises(Exception, match="2 DICOM series"):
        read_image(mixed)  # without the UID the folder is refused, naming both series


def test_shards_and_ranks_split_the_case_list_exactly_once():
    cases = list(range(11))
    for shards in (1, 3):
        for world in (1, 2, 4):
            taken = [i for s in range(shards) for r in range(world) for i, _ in CaseShare(s, shards, r, world).select(cases)]
            assert sorted(taken) == cases, (shards, world)
    assert [i for i, _ in CaseShare(1, 3).select(cases)] == [1, 4, 7, 10]
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) == (0, 1)
    for bad in ("4/4", "1-4", "a/b"):
        with pytest.raises(ConfigurationError, match="i/n"):
            parse_shard(bad)


def test_stages_add_up_inside_a_recording_only():
    with stage("network"):
        time.sleep(0.01)  # outside a recording: not kept anywhere
    with recording() as times:
        for _ in range(2):
            with stage("network"):
                time.sleep(0.02)
        with stage("resample"):
            pass
    assert set(times) == {"network", "resample"} and 0.04 <= times["network"] < 1.0 and times["resample"] < times["network"]


def test_input_dir_with_an_image_in_input_dict_is_refused(tmp_path):
    image, _ = _oblique_lps_phantom(tmp_path)
    with pytest.raises(ConfigurationError, match="both name the input"):
        parse_cases({"image": str(image)}, tmp_path)
    with pytest.raises(Exception, match="input folder not found"):
        parse_cases({}, tmp_path / "missing")
