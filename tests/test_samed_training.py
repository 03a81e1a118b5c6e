"""SAMed training through the bundle's train config (tiny network, phantom data): a 2-step run that resumes
exactly, only LoRA / prompt encoder / decoder change, slices and labels mapped by name, the schedule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import run

from bundles.checkpoints.loading import read_state_dict
from bundles.engines.trainer import warmup_poly
from bundles.errors import BundleInputError, ConfigurationError
from bundles.samed.training_data import SliceSampler
from tests.test_core_toy_family import _oblique_lps_phantom

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "samed_lora"
CONFIGS = [str(BUNDLE / "configs/train.json"), str(REPO / "tests/data/tiny_samed.json"), str(REPO / "tests/data/tiny_samed_train.json")]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("samed_train")
    image, mask = _oblique_lps_phantom(root)
    line = {"image": str(image), "mask": str(mask), "legend": {"1": "liver"}, "modality": "ct"}
    (root / "train.jsonl").write_text(json.dumps(line) + "\n")
    return root / "train.jsonl"


def _train(data: Path, ckpt: Path, **overrides) -> None:
    # a fixed decay horizon: the schedule must not depend on max_steps for the runs to be comparable
    run(config_file=CONFIGS, bundle_root=str(BUNDLE), train_data=str(data), ckpt_dir=str(ckpt), use_mlflow=False, decay_steps=100, **overrides)


def test_two_steps_then_resume_equal_three_uninterrupted_steps(data, tmp_path):
    _train(data, tmp_path / "once", max_steps=3)
    _train(data, tmp_path / "twice", max_steps=2)
    model = tmp_path / "twice" / "model" / "model.pt"
    two = read_state_dict(model)
    _train(data, tmp_path / "twice", max_steps=3, seed=7, resume="force")
    once, resumed = read_state_dict(tmp_path / "once/model/model.pt"), read_state_dict(model)
    assert all(torch.equal(once[k], resumed[k]) for k in once)
    changed = {k for k in two if not torch.equal(two[k], resumed[k])}
    assert changed and all(k.startswith(("prompt_encoder.", "mask_decoder.")) or ".linear_" in k for k in changed)
    assert any(".linear_b_q" in k for k in changed)  # the LoRA B factors leave zero and train


def test_slices_map_label_names_to_channels_and_augment(data):
    sampler = SliceSampler({"cases": str(data)}, img_size=32, class_names=["spleen", "liver"], seed=3)
    labels, images = set(), []
    for _ in range(30):
        sample = next(sampler)
        assert sample["image"].shape == (3, 32, 32) and sample["label"].shape == (1, 32, 32)
        assert sample["low_res_label"].shape == (1, 8, 8)
        labels |= set(sample["label"].unique().tolist())
        images.append(sample["image"])
    assert labels == {0, 2}  # 'liver' is channel 2 of class_names; 'spleen' is not in the mask
    assert 0.0 <= float(torch.stack(images).min()) and float(torch.stack(images).max()) <= 1.0
    plain = SliceSampler({"cases": str(data)}, img_size=32, class_names=["liver"], augment=False, seed=3)
    first = next(plain)
    bright = first["image"][0] > 0.9
    assert float((bright == (first["label"][0] == 1)).float().mean()) > 0.97  # unaugmented: label and image agree


def test_translate_moves_image_and_label_together(data):
    def centres(translate: int) -> np.ndarray:
        sampler = SliceSampler({"cases": str(data)}, img_size=32, class_names=["liver"], augment=False, foreground_prob=1.0,
                               translate=translate, seed=3)
        found = []
        for _ in range(12):
            sample = next(sampler)
            bright, label = sample["image"][0] > 0.9, sample["label"][0] == 1
            assert float((bright == label).float().mean()) > 0.97  # shifted together
            found.append(torch.nonzero(label).float().mean(0).numpy())
        return np.array(found)

    assert np.ptp(centres(0), axis=0).max() < 1.0  # the phantom's slices are centred in the frame
    assert np.ptp(centres(6), axis=0).max() > 3.0


@pytest.mark.parametrize("translate", [-3, 32])
def test_a_shift_outside_the_frame_is_refused(data, translate):
    with pytest.raises(ConfigurationError, match="translate must be"):
        SliceSampler({"cases": str(data)}, img_size=32, class_names=["liver"], translate=translate)


def test_no_class_in_any_mask_is_refused(data):
    with pytest.raises(BundleInputError, match=r"no voxel of any class \['aorta'\]"):
        SliceSampler({"cases": str(data)}, img_size=32, class_names=["aorta"])


def test_warmup_then_poly_decay():
    factor = warmup_poly(4, 100, 0.9)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(4) == 1.0 and np.isclose(factor(54), 0.5**0.9) and factor(500) == 0.0


def test_python_api_segments_with_a_trained_models_own_configs(data, tmp_path):
    """``bundles.segment("samed_lora", ...)`` on a model trained here picks up the overlays its training.json records."""
    import nibabel as nib

    from bundles import segment

    _train(data, tmp_path / "run", max_steps=1)
    image = json.loads(data.read_text())["image"]
    (folder,) = [p for p in segment("samed_lora", image, tmp_path / "out", model_dir=tmp_path / "run" / "model", device="cpu").iterdir()
                 if p.is_dir()]
    assert nib.load(folder / "seg.nii.gz").shape == nib.load(image).shape
    assert json.loads((folder / "legend.json").read_text())["labels"] == {"1": "liver", "2": "spleen"}


def test_python_api_raises_the_named_error_not_monais_wrapper(tmp_path):
    from bundles import segment
    from bundles.errors import BundleInputError

    with pytest.raises(BundleInputError, match="nope.nii.gz"):
        segment("samed_lora", tmp_path / "nope.nii.gz", tmp_path / "out", model_dir=tmp_path)
