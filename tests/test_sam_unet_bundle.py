"""SAM-UNet glue: volumes -> SA-Med2D folder, prompt samples, a 2-step training that resumes exactly, box- and
point-prompted inference on an oblique LPS phantom back on the input grid, bad prompts refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import run

from bundles.checkpoints.loading import read_state_dict
from bundles.errors import BundleInputError
from bundles.sam_unet.sa_med2d import mask_class, read_index, write_sa_med2d
from bundles.sam_unet.training_data import BoxPromptSampler
from tests.test_core_toy_family import _oblique_lps_phantom
from tests.test_sam_unet_network import tiny_sam_unet

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "sam_unet"
TINY = str(REPO / "tests/data/tiny_sam_unet.json")
CONFIGS = [str(BUNDLE / "configs/train.json"), TINY, str(REPO / "tests/data/tiny_sam_unet_train.json")]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("sam_unet")
    image, mask = _oblique_lps_phantom(root)
    cases = root / "cases.jsonl"
    cases.write_text(json.dumps({"image": str(image), "mask": str(mask), "legend": {"1": "bright blob"}, "modality": "ct"}) + "\n")
    return image, mask, cases


@pytest.fixture(scope="module")
def sa_med2d(phantom, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sa_med2d")
    counts = write_sa_med2d(phantom[2], out)
    assert counts["images"] == counts["masks"] > 5
    return out


def test_volumes_become_an_sa_med2d_folder_of_object_slices(phantom, sa_med2d):
    index = read_index(sa_med2d)
    image_rel, (mask_rel,) = sorted(index.items())[0]
    assert (sa_med2d / image_rel).is_file() and mask_class(mask_rel) == "bright_blob"
    from bundles.sam_unet.sa_med2d import read_png

    rgb, mask = read_png(sa_med2d / image_rel), read_png(sa_med2d / mask_rel)
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and set(np.unique(mask)) == {0, 255}
    assert rgb[mask > 0, 0].mean() > 200 and rgb[mask == 0, 0].mean() < 140  # 1000 HU inside, 40 HU outside
    with pytest.raises(BundleInputError, match="no object covers more than 0.9"):
        write_sa_med2d(phantom[2], sa_med2d.parent / "none", min_fraction=0.9)
    good = json.loads(phantom[2].read_text())
    cases = [good, {**good, "mask": str(sa_med2d.parent / "missing_mask.nii.gz")}]
    with pytest.raises(BundleInputError, match="missing_mask.nii.gz"):
        write_sa_med2d({"cases": cases}, sa_med2d.parent / "partial")
    assert not (sa_med2d.parent / "partial").exists()  # checked before the first case was written


def test_training_data_that_is_no_sa_med2d_folder_is_named_with_how_to_make_one(tmp_path):
    from bundles.errors import BundleInputError

    (tmp_path / "cases.jsonl").write_text("{}\n")
    for given, problem in [(tmp_path / "cases.jsonl", "is a file, not a folder"), (tmp_path / "gone", "not found"),
                           (tmp_path, "image2label_train.json is missing")]:
        with pytest.raises(BundleInputError, match=f"^{given}: .*{problem}.*tools.convert_to_sa_med2d"):
            read_index(given)


def test_samples_have_boxes_around_their_masks(sa_med2d):
    sampler = BoxPromptSampler(sa_med2d, img_size=64, masks_per_image=3, box_shift=0.0, seed=1)
    sample = next(sampler)
    assert sample["image"].shape == (3, 64, 64) and sample["masks"].shape == (3, 1, 64, 64)
    for mask, box in zip(sample["masks"], sample["boxes"]):
        rows, cols = np.nonzero(mask[0].numpy())
        assert list(box.numpy()) == [cols.min(), rows.min(), cols.max(), rows.max()]
    assert (sample["point_labels"] == -1).all()
    jittered = next(BoxPromptSampler(sa_med2d, img_size=64, masks_per_image=8, box_shift=5.0, seed=2))
    assert not torch.equal(jittered["boxes"], jittered["boxes"].round())


def _train(data: Path, ckpt: Path, **overrides) -> None:
    run(config_file=CONFIGS, bundle_root=str(BUNDLE), train_data=str(data), ckpt_dir=str(ckpt), use_mlflow=False, **overrides)


def test_two_steps_then_resume_equal_three_uninterrupted_steps(sa_med2d, tmp_path):
    _train(sa_med2d, tmp_path / "once", max_steps=3)
    _train(sa_med2d, tmp_path / "twice", max_steps=2)
    model = tmp_path / "twice" / "model" / "model.pt"
    two = read_state_dict(model)
    _train(sa_med2d, tmp_path / "twice", max_steps=3, seed=7, resume="force")
    once, resumed = read_state_dict(tmp_path / "once/model/model.pt"), read_state_dict(model)
    assert all(torch.equal(once[k], resumed[k]) for k in once)
    changed = {k for k in two if not torch.equal(two[k], resumed[k])}
    assert changed and not any(k.startswith("image_encoder.") for k in changed)  # the SAM encoder stays frozen


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("sam_unet_models")
    torch.save(tiny_sam_unet().state_dict(), models / "model.pt")
    return models


def _infer(input_dict: dict, out: Path, models: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", f"['configs/inference.json','{TINY}']", "--input_dict", json.dumps(input_dict),
         "--output_dir", str(out), "--model_dir", str(models), "--progress", "False"],
        cwd=BUNDLE, capture_output=True, text=True,
    )


def test_box_and_mask_prompted_inference_on_an_oblique_lps_volume(phantom, tiny_model_dir, tmp_path):
    image, mask, _ = phantom
    cases = [
        {"id": "boxes", "image": str(image), "objects": [{"name": "blob", "box": [12, 11, 5, 36, 29, 15]},
                                                         {"name": "dot", "points": [[24, 20, 10]], "point_labels": [1]}]},
        {"id": "from_mask", "image": str(image), "mask": str(mask), "legend": {"1": "blob"}, "boxes_from_mask": True},
    ]
    done = _infer({"cases": cases}, tmp_path / "out", tiny_model_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    source = nib.load(image)
    for case in ("boxes", "from_mask"):
        written = nib.load(tmp_path / "out" / case / "seg.nii.gz")
        assert written.shape == source.shape and np.allclose(written.affine, source.affine, atol=1e-5)
    legend = json.loads((tmp_path / "out" / "boxes" / "legend.json").read_text())
    assert list(legend["labels"].values()) == ["blob", "dot"]
    dot = np.asarray(nib.load(tmp_path / "out" / "boxes" / legend["files"]["dot"]).dataobj) > 0
    assert not dot[..., :9].any() and not dot[..., 12:].any()  # a point prompts only its own slice
    blob = np.asarray(nib.load(tmp_path / "out" / "boxes" / legend["files"]["blob"]).dataobj) > 0
    assert not blob[..., :5].any() and not blob[..., 16:].any()  # a box prompts only the slices it crosses


@pytest.mark.parametrize(
    "objects, message",
    [
        ([{"name": "far", "box": [0, 0, 0, 60, 10, 5]}], "box .* is outside the image of shape"),
        ([{"name": "nothing"}], "no prompt; SAM-UNet needs a 'box' or 'points'"),
        ([{"name": "flat", "box": [1, 2, 3]}], "box must be 6 numbers"),
        ([{"name": "reversed", "box": [20, 20, 5, 10, 10, 2]}], "first corner beyond its second"),
        ([], "SAM-UNet needs prompts"),
    ],
)
def test_bad_prompts_are_refused_in_one_line(phantom, tiny_model_dir, tmp_path, objects, message):
    done = _infer({"image": str(phantom[0]), "objects": objects}, tmp_path / "out", tiny_model_dir)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    import re

    assert re.search(message, done.stderr), done.stderr[-600:]
    assert not (tmp_path / "out").exists() or not any(p.suffix == ".gz" for p in (tmp_path / "out").rglob("*"))


def test_python_api_segments_prompted_objects(phantom, sa_med2d, tmp_path):
    from bundles import segment

    _train(sa_med2d, tmp_path / "run", max_steps=1)
    out = segment("sam_unet", phantom[0], tmp_path / "out", model_dir=tmp_path / "run" / "model", device="cpu",
                  objects=[{"name": "blob", "box": [12, 11, 5, 36, 29, 15]}])
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert nib.load(folder / "seg.nii.gz").shape == nib.load(phantom[0]).shape
    assert list(json.loads((folder / "legend.json").read_text())["labels"].values()) == ["blob"]
