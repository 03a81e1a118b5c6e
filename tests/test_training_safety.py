"""Training never loses the user's work: run identities, protected pretrained weights, 0-step runs, model cards.

Tiny SAT (tests/data/tiny_sat.json on configs/demo.json) on synthetic phantoms, through MONAI's bundle runner.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import pytest
import torch
from monai.bundle import run

from bundles.data.phantom import make_ct_phantom
from bundles.errors import CheckpointError, ConfigurationError, find_bundle_error

BUNDLE = Path(__file__).resolve().parents[1] / "sat_nano"
TINY = str(Path(__file__).resolve().parent / "data" / "tiny_sat.json")
TRAIN = [str(BUNDLE / "configs/train.json"), str(BUNDLE / "configs/demo.json"), TINY]


def _case(folder: Path, seed: int, modality: str = "ct") -> Path:
    phantom = make_ct_phantom(seed, shape=(80, 64, 20), spacing=(2.0, 2.0, 6.0))
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(phantom.image, phantom.affine), folder / "image.nii.gz")
    nib.save(nib.Nifti1Image(phantom.labels, phantom.affine), folder / "label.nii.gz")
    line = {"image": str(folder / "image.nii.gz"), "mask": str(folder / "label.nii.gz"),
            "legend": {str(k): v for k, v in phantom.legend.items()}, "modality": modality}
    data = folder / "train.jsonl"
    data.write_text(json.dumps(line) + "\n")
    return data


def _train(root: Path, data: Path, ckpt: str, **overrides):
    settings = dict(bundle_root=str(BUNDLE), train_data=str(data), ckpt_dir=str(root / ckpt), use_mlflow=False, max_steps=2)
    settings.update(overrides)
    return run(config_file=TRAIN, **settings)


def _raised(excinfo) -> Exception:
    return find_bundle_error(excinfo.value) or excinfo.value


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("safety")
    data = _case(root / "a", seed=1)
    _train(root, data, "run_a")
    return {"root": root, "data": data, "model": root / "run_a" / "model"}


def _pretrained_copy(model: Path, folder: Path) -> Path:
    """A weights folder to fine-tune from: a copy of a trained model's two weights files."""
    folder.mkdir()
    for name in ("model.pt", "text_encoder.pt"):
        (folder / name).write_bytes((model / name).read_bytes())
    return folder


def test_fine_tuning_leaves_the_pretrained_weights_folder_byte_identical(trained, tmp_path):
    weights = _pretrained_copy(trained["model"], tmp_path / "pretrained")
    before = _digests(weights)
    _train(tmp_path, trained["data"], "finetune", load_pretrained=True, model_dir=str(weights))
    assert _digests(weights) == before
    exported = tmp_path / "finetune" / "model"
    assert (exported / "model.pt").is_file() and (exported / "training.json").is_file()
    tuned = torch.load(exported / "model.pt", weights_only=True)
    start = torch.load(weights / "model.pt", weights_only=True)
    assert any(not torch.equal(tuned[k], start[k]) for k in start)


def test_exporting_into_the_folder_of_the_loaded_weights_is_refused_before_training(trained, tmp_path):
    weights = _pretrained_copy(trained["model"], tmp_path / "pretrained")
    before = _digests(weights)
    with pytest.raises(Exception) as excinfo:
        _train(tmp_path, trained["data"], "finetune", load_pretrained=True, model_dir=str(weights), export_dir=str(weights))
    error = _raised(excinfo)
    assert isinstance(error, ConfigurationError) and "pretrained weights from" in str(error)
    assert _digests(weights) == before
    assert not (tmp_path / "finetune" / "last.pt").exists()


def test_a_checkpoint_of_another_data_list_is_refused_not_resumed(trained, tmp_path):
    other = _case(tmp_path / "b", seed=2, modality="mri")
    checkpoint = trained["root"] / "run_a" / "last.pt"
    before = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    with pytest.raises(Exception) as excinfo:
        _train(trained["root"], other, "run_a", max_steps=4)
    error = _raised(excinfo)
    assert isinstance(error, ConfigurationError)
    assert "data list" in str(error) and "--ckpt_dir" in str(error) and "--resume force" in str(error)
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before


def test_other_settings_are_refused_and_force_resumes_them_explicitly(trained, tmp_path):
    root = tmp_path
    _train(root, trained["data"], "run", max_steps=1)
    with pytest.raises(Exception) as excinfo:
        _train(root, trained["data"], "run", max_steps=2, learning_rate=0.01)
    assert "training settings" in str(_raised(excinfo))
    _train(root, trained["data"], "run", max_steps=2, learning_rate=0.01, resume="force")
    assert torch.load(root / "run" / "last.pt", weights_only=True)["step"] == 2


def test_a_finished_run_trains_zero_steps_only_when_asked(trained, tmp_path):
    with pytest.raises(Exception) as excinfo:
        _train(trained["root"], trained["data"], "run_a")
    error = _raised(excinfo)
    assert isinstance(error, ConfigurationError) and "0 steps" in str(error) and "--reuse_finished True" in str(error)
    _train(trained["root"], trained["data"], "run_a", reuse_finished=True)
    assert (trained["model"] / "model.pt").is_file()


def test_the_model_folder_says_what_it_holds(trained):
    card = json.loads((trained["model"] / "training.json").read_text())
    assert card["step"] == 2
    assert [Path(f).name for f in card["config_files"]] == ["train.json", "demo.json", "tiny_sat.json"]
    assert card["config"]["network_def"]["features"] == [4, 8, 8, 8, 8, 8]
    assert set(card["identity"]) == {"settings", "data", "pretrained", "code"}
    assert card["files_sha256"]["model.pt"] == hashlib.sha256((trained["model"] / "model.pt").read_bytes()).hexdigest()


def test_loading_a_model_with_the_wrong_config_names_the_config_that_trained_it(trained):
    from bundles.checkpoints.loading import load_weights
    from bundles.networks.sat import SAT

    network = SAT(roi_size=(64, 64, 32), features=(8, 8, 8, 8, 8, 8), convs_per_stage=1, projection_hidden=16,
                  mask_embed_hidden=8, deep_supervision_hidden=(8, 8, 8), decoder_layers=1, ffn_dim=32, max_queries=4)
    with pytest.raises(CheckpointError) as excinfo:
        load_weights(network, trained["model"] / "model.pt")
    message = str(excinfo.value)
    assert "demo.json" in message and "tiny_sat.json" in message and "--config_file" in message
    assert len(message) < 700


def test_loading_another_familys_model_names_the_bundle_it_belongs_to(trained):
    from bundles.checkpoints.loading import load_weights
    from tests.test_samed_network import tiny_samed

    network = tiny_samed()
    with pytest.raises(CheckpointError, match=r"it is a model of the sat_nano bundle \(.*training.json\), not of this one"):
        load_weights(network, trained["model"] / "model.pt")


def _losses(tracking_uri: str) -> list[float]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("sat_nano_demo")
    (only,) = client.search_runs(experiment.experiment_id)
    return [m.value for m in sorted(client.get_metric_history(only.info.run_id, "loss"), key=lambda m: m.step)]


def test_training_is_deterministic_for_a_seed(tmp_path):
    """Same seed, same machine -> the same loss at every step and byte-identical weights (augmentation on)."""
    data = _case(tmp_path / "d", seed=3)
    losses = {}
    for name, seed in (("one", 7), ("two", 7), ("three", 8)):
        uri = f"sqlite:///{tmp_path / name}.db"
        _train(tmp_path, data, name, max_steps=4, seed=seed, use_mlflow=True, tracking_uri=uri, log_every=1)
        losses[name] = _losses(uri)
    assert len(losses["one"]) == 4
    assert losses["one"] == losses["two"]
    assert losses["one"] != losses["three"]
    model = {n: (tmp_path / n / "model" / "model.pt").read_bytes() for n in losses}
    assert model["one"] == model["two"] != model["three"]


def test_monai_tracking_flag_logs_the_run_through_the_standard_trainer_ids(trained, tmp_path):
    """``--tracking mlflow`` (every model-zoo bundle's flag) finds ``train#trainer`` and ``train#handlers``."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    _train(tmp_path, trained["data"], "tracked", tracking="mlflow", tracking_uri=uri, output_dir=str(tmp_path / "eval"),
           experiment_name="tracked")
    client = mlflow.MlflowClient(tracking_uri=uri)
    (only,) = client.search_runs(client.get_experiment_by_name("tracked").experiment_id)
    assert [m.step for m in client.get_metric_history(only.info.run_id, "train_loss")] == [1, 2]


@pytest.mark.parametrize("bundle, command", [("sat_nano", "bundles.sat.convert"), ("sat_pro", "bundles.sat.convert"),
                                             ("sam_med3d", "bundles.sam_med3d.convert"), ("samed_lora", "bundles.samed.convert"),
                                             ("sam_unet", "bundles.sam_unet.convert")])
def test_training_from_missing_pretrained_weights_says_how_to_get_them_before_any_work(tmp_path, bundle, command):
    import subprocess
    import sys

    folder = BUNDLE.parent / bundle
    done = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", "--load_pretrained", "True",
                           "--model_dir", str(tmp_path / "nothing"), "--train_data", str(tmp_path / "none.jsonl"),
                           "--ckpt_dir", str(tmp_path / "run")], cwd=folder, capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"missing model files: {tmp_path / 'nothing' / 'model.pt'}" in done.stderr and command in done.stderr, done.stderr[-800:]
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("*.pt"))
