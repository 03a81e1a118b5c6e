"""Every bundle folder holds what a MONAI model-zoo bundle needs: its configs, its docs and a licence that
states the code's licence (Apache-2.0, with the full text) and where the weights come from."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
from bundles.bundle_configs import BUNDLES  # the discovered bundle folders

#: Configs every bundle ships (the developers' guide's list; a family may add more).
CONFIGS = {"metadata.json", "inference.json", "train.json", "evaluate.json", "multi_gpu_train.json", "logging.conf"}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_has_its_configs_docs_and_licence(bundle):
    folder = ROOT / bundle
    missing = sorted(name for name in CONFIGS if not (folder / "configs" / name).is_file())
    assert not missing, f"{bundle}/configs lacks {missing}"
    assert (folder / "docs" / "README.md").is_file()
    licence = (folder / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("Code and configuration of this bundle: Apache License 2.0")
    assert "Model weights:" in licence and "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in licence
