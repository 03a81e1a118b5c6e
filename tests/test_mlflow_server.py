"""Training logs to a real ``mlflow server`` (SQLite backend, local artifact store) on 127.0.0.1: a 2-step
run of a tiny SAMed, read back through the MLflow client: parameters, the loss and learning rate of every
step, the merged config and the exported model as artifacts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from monai.bundle import run

from tests.test_core_toy_family import phantom_train_list

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "samed_lora"
CONFIGS = [str(BUNDLE / "configs/train.json"), str(REPO / "tests/data/tiny_samed.json"), str(REPO / "tests/data/tiny_samed_train.json")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"mlflow server did not start: {server.stderr.read()[-2000:]}")
            time.sleep(0.5)
    yield url
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def test_a_training_run_is_read_back_from_the_server(mlflow_server, tmp_path):
    data = phantom_train_list(tmp_path)
    run(config_file=CONFIGS, bundle_root=str(BUNDLE), train_data=str(data), ckpt_dir=str(tmp_path / "ckpt"), max_steps=2,
        tracking_uri=mlflow_server, run_name="served")
    client = mlflow.tracking.MlflowClient(tracking_uri=mlflow_server)
    (found,) = client.search_runs([client.get_experiment_by_name("samed_lora").experiment_id])
    assert found.info.run_name == "served" and found.info.status == "FINISHED"
    assert found.data.params["max_steps"] == "2"
    assert [m.step for m in client.get_metric_history(found.info.run_id, "loss")] == [1, 2]
    assert [m.step for m in client.get_metric_history(found.info.run_id, "lr_group_0")] == [1, 2]  # MONAI names it per group
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)} | {
        a.path for a in client.list_artifacts(found.info.run_id, "config")}
    assert {"model.pt", "training.json", "config/merged_config.json"} <= artifacts
    merged = json.loads(Path(client.download_artifacts(found.info.run_id, "config/merged_config.json", str(tmp_path))).read_text())
    assert merged["config"]["max_steps"] == 2 and merged["config_files"] == CONFIGS
