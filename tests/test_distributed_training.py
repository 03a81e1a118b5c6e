"""Training with ``configs/multi_gpu_train.json`` under torchrun: 2 gloo processes on the CPU, a tiny SAMed on
a phantom. Both ranks end with identical parameters, each rank trained on its own samples, only rank 0
wrote checkpoints, the exported model and MLflow entries, and a run stopped after 2 steps resumes at step
2 and ends where an uninterrupted 3-step run ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch

from bundles.checkpoints.loading import read_state_dict
from tests.test_core_toy_family import phantom_train_list

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "samed_lora"
CONFIGS = ["configs/train.json", str(REPO / "tests/data/tiny_samed.json"), str(REPO / "tests/data/tiny_samed_train.json"),
           "configs/multi_gpu_train.json", str(REPO / "tests/data/rank_dump.json")]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return phantom_train_list(tmp_path_factory.mktemp("ddp_data"))


def _torchrun(data: Path, run_dir: Path, max_steps: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "monai.bundle", "run",
               "--config_file", str(CONFIGS), "--bundle_root", str(BUNDLE), "--train_data", str(data),
               "--ckpt_dir", str(run_dir / "ckpt"), "--export_dir", str(run_dir / "model"), "--max_steps", str(max_steps),
               "--decay_steps", "100", "--tracking_uri", f"sqlite:///{run_dir / 'mlruns.db'}", "--run_name", f"ddp-{max_steps}"]
    done = subprocess.run(command, cwd=BUNDLE, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def three_steps(data, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    run_dir = tmp_path_factory.mktemp("ddp_once")
    return run_dir, _torchrun(data, run_dir, 3)


def test_both_ranks_hold_the_same_weights_after_training_on_different_samples(three_steps):
    run_dir, _ = three_steps
    rank0, rank1 = (torch.load(run_dir / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert rank0["params"].keys() == rank1["params"].keys()
    assert all(torch.equal(rank0["params"][k], rank1["params"][k]) for k in rank0["params"])
    assert not torch.equal(rank0["batch"]["image"], rank1["batch"]["image"])  # the last step's batches differ by rank
    exported = read_state_dict(run_dir / "model" / "model.pt")
    assert all(torch.equal(exported[k], rank0["params"][k]) for k in exported)


def test_only_rank_0_writes_checkpoints_and_mlflow_entries(three_steps):
    run_dir, done = three_steps
    logs = done.stdout + done.stderr
    assert logs.count("exported the trained weights") == 1  # the export handler runs on rank 0 only
    assert sorted(p.name for p in (run_dir / "ckpt").iterdir() if p.suffix == ".pt") == ["last.pt"]
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlruns.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1 and runs[0].info.run_name == "ddp-3"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")] == [1, 2, 3]


def test_a_run_stopped_after_two_steps_resumes_at_step_two_and_ends_as_the_uninterrupted_one(data, three_steps, tmp_path):
    reference, _ = three_steps
    _torchrun(data, tmp_path, 2)
    resumed = _torchrun(data, tmp_path, 3)
    assert "at step 2" in resumed.stdout + resumed.stderr
    once, twice = read_state_dict(reference / "model" / "model.pt"), read_state_dict(tmp_path / "model" / "model.pt")
    assert all(torch.equal(once[k], twice[k]) for k in once)
