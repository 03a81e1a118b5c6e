"""The MONAI Label app, live: a real ``python -m monailabel.main start_server`` (through ``tools/serve.py``) on
127.0.0.1 serving tiny-config SAT-Nano, SAM-Med3D, SAMed and SAM-UNet, with a studies folder holding an
oblique LPS phantom and the shipped abdominal CT (patient A).

The tiny models (``tests/live_server.py``) have mask heads that make every logit positive, so a returned mask
shows exactly where the pipeline put the model's window, box or slices: the checks below test the geometry of
the whole path, not what random weights predict.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bundles.data.examples import EXAMPLES
from tests.needs import require

require(packages=("monailabel",))

import requests  # noqa: E402 - after the skip: a dependency of monailabel

from tests.live_server import REPO, infer, phantom_studies, result, running_server, tiny_model_dirs  # noqa: E402

CLICK = [24, 20, 10]  #: the phantom's bright ellipsoid centre (voxel indices)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_sat_model):
    root = tmp_path_factory.mktemp("monailabel")
    studies, mask = phantom_studies(root)
    shutil.copy(EXAMPLES["ct_abdomen_pelvis"].image, studies / "patient_a.nii.gz")
    with running_server(root, studies, tiny_model_dirs(root, tiny_sat_model), ["--max_sessions", "2"]) as live:
        yield {"url": live.url, "root": root, "work": live.work, "studies": studies, "mask": mask, "process": live.process}


def _infer(server, model: str, image: str, params: dict, timeout: float = 300) -> requests.Response:
    return infer(server["url"], model, image, params, timeout)


def _result(answer: requests.Response) -> tuple[dict, nib.Nifti1Image]:
    return result(answer)


def _on_grid_of(label: nib.Nifti1Image, image: Path) -> bool:
    source = nib.load(image)
    return label.shape == source.shape and np.allclose(label.affine, source.affine, atol=1e-4)


def test_info_lists_every_bundle_with_its_type_and_labels(server):
    info = requests.get(f"{server['url']}/info/", timeout=30).json()
    models = info["models"]
    assert set(models) == {"sat_nano", "sam_med3d", "samed_lora", "sam_unet"}
    assert models["sat_nano"]["type"] == "segmentation" and models["sat_nano"]["labels"]["liver"] >= 1
    assert len(models["sat_nano"]["labels"]) > 400  # SAT's vocabulary, for OHIF's class picker
    assert models["sam_med3d"]["type"] == "deepgrow" and models["sam_unet"]["type"] == "deepgrow"
    assert models["samed_lora"]["labels"] == {"liver": 1, "spleen": 2}
    assert set(info["trainers"]) == set(models)


def test_sat_takes_free_text_and_class_picker_prompts_on_the_real_scan(server):
    labels = requests.get(f"{server['url']}/info/", timeout=30).json()["models"]["sat_nano"]["labels"]
    meta, label = _result(_infer(server, "sat_nano", "patient_a", {"prompts": ["liver"], "label_prompt": [labels["spleen"]]}))
    assert meta["label_names"] == {"liver": 1, "spleen": 2}
    assert _on_grid_of(label, server["studies"] / "patient_a.nii.gz")
    values = set(np.unique(np.asarray(label.dataobj)).tolist())
    assert values - {0}, "every prompted class has a mask (threshold 0 here)"


def test_a_second_click_on_the_same_image_is_served_from_the_cached_session(server):
    """Patient A (3 mm voxels, axis-aligned): the 32-voxel window of 1.5 mm (48 mm) around the click comes
    back as a 48 mm box containing the click, on the scan's own grid."""
    scan = server["studies"] / "patient_a.nii.gz"
    click, second_click = [61, 50, 56], [58, 48, 55]
    first_meta, first = _result(_infer(server, "sam_med3d", "patient_a", {"foreground": [click], "label": "liver", "client_id": "a"}))
    assert first_meta["session"] == {"new": True, "clicks_added": 1, "replayed": False, "encodings": 1}
    assert _on_grid_of(first, scan)
    mask = np.asarray(first.dataobj) > 0
    assert mask[tuple(click)], "the window holds the click, given in the scan's own voxel indices"
    extent_mm = (np.argwhere(mask).max(axis=0) - np.argwhere(mask).min(axis=0) + 1) * 3.0
    assert np.all(np.abs(extent_mm - 48) <= 3), extent_mm
    second_meta, second = _result(_infer(server, "sam_med3d", "patient_a",
                                         {"foreground": [click], "background": [second_click], "label": "liver", "client_id": "a"}))
    assert second_meta["session"] == {"new": False, "clicks_added": 1, "replayed": False, "encodings": 1}
    assert _on_grid_of(second, scan) and np.asarray(second.dataobj).any()
    # OHIF's form of the same clicks, from another client: a new session that decodes both clicks the same way
    ohif_meta, ohif = _result(_infer(server, "sam_med3d", "patient_a",
                                     {"points": [click, second_click], "point_labels": [1, 0], "label": "liver", "client_id": "b"}))
    assert ohif_meta["session"]["new"] and ohif_meta["session"]["clicks_added"] == 2
    assert np.array_equal(np.asarray(ohif.dataobj), np.asarray(second.dataobj))
    # a click taken back: the object's clicks are replayed from the first, giving the first answer again
    undo_meta, undone = _result(_infer(server, "sam_med3d", "patient_a", {"foreground": [click], "label": "liver", "client_id": "a"}))
    assert undo_meta["session"]["replayed"] and np.array_equal(np.asarray(undone.dataobj), np.asarray(first.dataobj))


def test_samed_segments_every_slice_without_prompts(server):
    meta, label = _result(_infer(server, "samed_lora", "phantom", {}))
    assert set(meta["label_names"]) == {"liver", "spleen"}
    assert _on_grid_of(label, server["studies"] / "phantom.nii.gz")
    data = np.asarray(label.dataobj)
    assert all(data[..., k].any() for k in range(data.shape[2]))


def test_sam_unet_segments_the_slices_of_its_box(server):
    meta, label = _result(_infer(server, "sam_unet", "phantom", {"box": [14, 12, 6, 34, 28, 12], "label": "blob"}))
    assert meta["label_names"] == {"blob": 1}
    assert _on_grid_of(label, server["studies"] / "phantom.nii.gz")
    per_slice = np.asarray(label.dataobj).reshape(-1, label.shape[2]).any(axis=0)
    assert per_slice[6:13].all() and not per_slice[:6].any() and not per_slice[13:].any()


@pytest.mark.parametrize(("model", "params", "status", "message"), [
    ("sat_nano", {"prompts": ["liverr"]}, 422, "liver"),
    ("sat_nano", {"label_prompt": [100000]}, 422, "label_prompt 100000"),
    ("sam_med3d", {"foreground": [[500, 20, 10]]}, 422, "outside the image"),
    ("sam_med3d", {"points": [CLICK], "point_labels": [1, 0]}, 422, "point_labels"),
    ("sam_med3d", {"foreground": [[1.5, 2, 3]]}, 422, "integers"),
    ("sam_unet", {"box": [30, 12, 6, 14, 28, 12]}, 422, "first corner beyond"),
    ("no_such_model", {}, 404, "sat_nano"),
])
def test_bad_requests_get_a_4xx_with_a_clear_message_and_the_server_goes_on(server, model, params, status, message):
    answer = _infer(server, model, "phantom", params)
    assert answer.status_code == status and message in answer.json()["detail"], answer.text[:500]
    assert requests.get(f"{server['url']}/info/", timeout=30).status_code == 200


@pytest.mark.parametrize("prompt", ["$__import__('os').system('touch pwned')", {"_target_": "os.system", "command": "touch pwned"}])
def test_request_values_are_data_never_configuration(server, prompt):
    answer = _infer(server, "sat_nano", "phantom", {"prompts": [prompt]})
    assert answer.status_code == 422, answer.text[:500]
    time.sleep(0.5)
    assert not list(server["work"].rglob("pwned")) and not list(server["root"].rglob("pwned")) and not (REPO / "pwned").exists()


def test_twenty_concurrent_requests_are_all_answered(server):
    def one(i: int) -> tuple[int, tuple[int, ...]]:
        model, params = [("samed_lora", {}), ("sam_unet", {"box": [14, 12, 6, 34, 28, 12]}),
                         ("sam_med3d", {"foreground": [CLICK], "client_id": f"load{i % 3}"})][i % 3]
        answer = _infer(server, model, "phantom", params, timeout=600)
        return answer.status_code, _result(answer)[1].shape if answer.status_code == 200 else ()

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(one, range(20)))
    assert answers == [(200, (48, 40, 20))] * 20
    assert requests.get(f"{server['url']}/info/", timeout=30).status_code == 200
    assert server["process"].poll() is None


def test_train_runs_the_bundle_training_on_the_datastore_labels_for_one_step(server):
    with open(server["mask"], "rb") as f:
        saved = requests.put(f"{server['url']}/datastore/label", params={"image": "phantom", "tag": "final"},
                             files={"label": ("phantom.nii.gz", f), "params": (None, json.dumps({"label_info": [{"name": "liver", "idx": 1}]}))},
                             timeout=60)
    assert saved.status_code == 200, saved.text[:500]
    answer = requests.post(f"{server['url']}/train/sat_nano", params={"run_sync": "true"},
                           json={"max_steps": 1, "device": "cpu"}, timeout=600)
    assert answer.status_code == 200, answer.text[:1000]
    result = answer.json()
    assert result["cases"] == 1 and result["max_steps"] == 1
    assert (Path(result["model_dir"]) / "model.pt").is_file() and (Path(result["run_dir"]) / "mlruns.db").is_file()
    refused = requests.post(f"{server['url']}/train/sat_nano", params={"run_sync": "true"}, json={"max_steps": "$1"}, timeout=60)
    assert refused.status_code == 422 and "max_steps" in refused.text


@pytest.mark.parametrize(("args", "message"), [
    (["--models", "sat_nan"], "unknown bundle(s) sat_nan"),
    (["--models", "sam_med3d", "--model_dirs", "{'sam_med3d': '/nonexistent'}"], "missing model files: /nonexistent/model.pt"),
])
def test_the_server_command_refuses_bad_options_in_one_line_before_starting(tmp_path, args, message):
    done = subprocess.run([sys.executable, "-m", "tools.serve", "--studies", str(tmp_path), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr[-1500:]
    assert "monailabel.main" not in done.stdout  # nothing was started
