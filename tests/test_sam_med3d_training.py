"""SAM-Med3D training through the bundle's train config (tiny network, phantom data): click simulation,
object windows, a 2-step run that resumes exactly, and the official optimiser groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import run

from bundles.checkpoints.loading import load_weights, read_state_dict
from bundles.errors import BundleInputError
from bundles.interactive.simulation import random_click, ritm_click
from bundles.networks.sam_med3d import SAMMed3D
from bundles.sam_med3d.training import param_groups
from bundles.sam_med3d.training_data import ObjectWindowSampler
from tests.test_core_toy_family import _oblique_lps_phantom
from tests.test_sam_med3d_network import TINY

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "sam_med3d"
CONFIGS = [str(BUNDLE / "configs/train.json"), str(REPO / "tests/data/tiny_sam_med3d.json"),
           str(REPO / "tests/data/tiny_sam_med3d_train.json")]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sam_med3d_train")
    image, mask = _oblique_lps_phantom(root)
    line = {"image": str(image), "mask": str(mask), "legend": {"1": "blob"}, "modality": "ct"}
    (root / "train.jsonl").write_text(json.dumps(line) + "\n")
    return root / "train.jsonl"


def _train(data: Path, ckpt: Path, **overrides) -> None:
    settings = dict(bundle_root=str(BUNDLE), train_data=str(data), ckpt_dir=str(ckpt), use_mlflow=False,
                    lr_milestones=[10, 10])  # milestones past the end: the schedule does not depend on max_steps
    settings.update(overrides)
    run(config_file=CONFIGS, **settings)


def test_two_steps_then_resume_equal_three_uninterrupted_steps(data, tmp_path):
    _train(data, tmp_path / "once", max_steps=3)
    _train(data, tmp_path / "twice", max_steps=2)
    model = tmp_path / "twice" / "model" / "model.pt"
    two = read_state_dict(model)
    load_weights(SAMMed3D.vit_b_ori(**TINY), model)  # the export loads strictly into the tiny network
    # resumes at step 2 from last.pt; another seed (forced) proves the weights, the sample stream and the
    # click stream all come from the checkpoint: a fresh start with seed 7 would give other weights
    _train(data, tmp_path / "twice", max_steps=3, seed=7, resume="force")
    once, resumed = read_state_dict(tmp_path / "once/model/model.pt"), read_state_dict(model)
    assert all(torch.equal(once[k], resumed[k]) for k in once)
    assert any(not torch.equal(two[k], resumed[k]) for k in two)  # the third step changed the weights


def test_windows_are_centred_on_the_object_and_flipped(data):
    sampler = ObjectWindowSampler({"cases": str(data)}, size=32, spacing=3.0, min_voxels=20, seed=1)
    shapes, flips = set(), set()
    for _ in range(8):
        sample = next(sampler)
        shapes.add(tuple(sample["image"].shape))
        idx = np.argwhere(sample["label"][0].numpy() > 0)
        centre = (idx.min(0) + idx.max(0) + 1) / 2
        assert np.all(np.abs(centre - 16) <= 1)  # torchio's centring rule, flips mirror around the middle
        flips.add(tuple(idx.min(0)))
        assert abs(float(sample["image"][sample["image"] > sample["image"].min()].mean())) < 1.5
    assert shapes == {(1, 32, 32, 32)} and len(flips) > 1


def test_no_object_big_enough_is_refused_naming_the_data(data):
    with pytest.raises(BundleInputError, match="no object has more than 100000 voxels"):
        ObjectWindowSampler({"cases": str(data)}, size=32, spacing=3.0, min_voxels=100_000)


def test_random_clicks_fall_in_the_error_region_with_the_right_label():
    rng = np.random.default_rng(0)
    gt = np.zeros((10, 10, 10), bool)
    gt[2:6, 2:6, 2:6] = True
    pred = np.zeros_like(gt)
    pred[4:8, 4:8, 4:8] = True
    for _ in range(50):
        voxel, label = random_click(pred, gt, rng)
        assert gt[tuple(voxel)] != pred[tuple(voxel)] and label == int(gt[tuple(voxel)])
    voxel, label = random_click(np.zeros_like(gt), gt, rng)
    assert gt[tuple(voxel)] and label == 1


def test_ritm_clicks_are_deep_inside_the_larger_error():
    rng = np.random.default_rng(0)
    gt = np.zeros((21, 21, 21), bool)
    gt[2:19, 2:19, 2:19] = True  # a 17-voxel cube, nothing predicted: the first click is in its core
    for _ in range(20):
        voxel, label = ritm_click(np.zeros_like(gt), gt, rng)
        assert label == 1 and np.all(np.abs(voxel - 10) <= 4)
    pred = gt.copy()
    pred[0:2, :, :] = True  # a thin false positive slab: the false negatives win once there are some
    pred[8:13, 8:13, 8:13] = False
    voxel, label = ritm_click(pred, gt, rng)
    assert label == 1 and np.all(np.abs(voxel - 10) <= 2)


def test_prompt_encoder_and_decoder_learn_ten_times_slower():
    net = SAMMed3D.vit_b_ori(**TINY)
    encoder, rest = param_groups(net, 8e-4)
    assert encoder["lr"] == 8e-4 and rest["lr"] == pytest.approx(8e-5)
    assert len(encoder["params"]) + len(rest["params"]) == len(list(net.parameters()))
