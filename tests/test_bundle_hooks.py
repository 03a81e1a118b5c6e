"""Every bundle declares what the server needs as config ids (as MONAI's ``bundle/properties.py`` names the ids a
workflow needs), so no server code keeps a table of bundles: ``inference.json`` names its MONAI Label task
(``serving_task``), ``train.json`` how ``/train`` hands it the datastore's cases (``serving_train_data``)."""

from __future__ import annotations

import json

import pytest
from monai.bundle import ConfigParser

from bundles.bundle_configs import BUNDLES, bundle_dir, discover_bundles
from tests.needs import require

require(packages=("monailabel",))


def test_the_bundles_are_the_folders_with_a_metadata_file(tmp_path):
    assert BUNDLES and all((bundle_dir(b) / "configs" / "inference.json").is_file() for b in BUNDLES)
    (tmp_path / "new_family" / "configs").mkdir(parents=True)
    (tmp_path / "new_family" / "configs" / "metadata.json").write_text("{}")
    (tmp_path / "docs_only").mkdir()
    assert discover_bundles(tmp_path) == ("new_family",)


def _parsed(bundle: str, config: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(bundle_dir(bundle) / "configs" / config))
    parser["bundle_root"] = str(bundle_dir(bundle))
    return parser


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_bundle_declares_its_serving_task_and_training_data_hook(bundle):
    task = _parsed(bundle, "inference.json").get_parsed_content("serving_task")
    hook = _parsed(bundle, "train.json").get_parsed_content("serving_train_data")
    assert callable(task) and task.__name__ == "infer_task" and task.__module__.endswith(".serving")
    assert callable(hook)


def test_the_default_training_data_hook_writes_a_case_list(tmp_path):
    hook = _parsed("sat_nano", "train.json").get_parsed_content("serving_train_data")
    cases = [{"id": "a", "image": "/x/a.nii.gz", "mask": "/x/a_label.nii.gz", "legend": {"1": "liver"}, "modality": "ct"}]
    path = hook(cases, tmp_path)
    assert [json.loads(line) for line in open(path, encoding="utf-8")] == cases


def test_a_bundle_command_from_the_wrong_folder_says_so_in_one_line(tmp_path):
    import subprocess
    import sys

    from bundles.bundle_configs import check_bundle_root
    from bundles.errors import ConfigurationError

    check_bundle_root(bundle_dir("sat_nano"), "train.json")
    with pytest.raises(ConfigurationError, match="bundle folders here: sam_med3d, sam_unet, samed_lora, sat_nano, sat_pro"):
        check_bundle_root(bundle_dir("sat_nano").parent)
    repo = bundle_dir("sat_nano").parent
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "samed_lora/configs/inference.json",
               "--input_dict", "{'image': 'data/examples/ct_abdomen_pelvis/example_ct.nii.gz'}", "--output_dir", str(tmp_path / "out")]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: ConfigurationError: {repo}: bundle_root is not a bundle folder")
