"""Shared pytest fixtures: small synthetic images written to a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_sat_model(tmp_path_factory) -> Path:
    """A tiny SAT trained for 2 steps through the sat_nano train config (demo + tests/data/tiny_sat.json
    overlays) on a synthetic CT phantom; returns its exported model folder (with ``training.json``)."""
    import json

    import nibabel as nib
    from monai.bundle import run

    from bundles.data.phantom import make_ct_phantom

    root = tmp_path_factory.mktemp("tiny_sat_model")
    phantom = make_ct_phantom(11, shape=(80, 64, 20), spacing=(2.0, 2.0, 6.0))
    nib.save(nib.Nifti1Image(phantom.image, phantom.affine), root / "image.nii.gz")
    nib.save(nib.Nifti1Image(phantom.labels, phantom.affine), root / "label.nii.gz")
    line = {"image": str(root / "image.nii.gz"), "mask": str(root / "label.nii.gz"),
            "legend": {str(k): v for k, v in phantom.legend.items()}, "modality": "ct"}
    (root / "train.jsonl").write_text(json.dumps(line) + "\n")
    bundle = REPO_ROOT / "sat_nano"
    run(config_file=[str(bundle / "configs/train.json"), str(bundle / "configs/demo.json"), str(REPO_ROOT / "tests/data/tiny_sat.json")],
        bundle_root=str(bundle), train_data=str(root / "train.jsonl"), ckpt_dir=str(root / "run"), use_mlflow=False, max_steps=2)
    return root / "run" / "model"
