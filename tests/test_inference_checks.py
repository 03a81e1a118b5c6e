"""Checks the inference job runs before any model is loaded: weights present, output folder writable,
prompts and paths of every case valid."""

from __future__ import annotations

import pytest

from bundles.checkpoints.release import check_model_files
from bundles.engines.segmentation_job import prepare_cases
from bundles.errors import BundleInputError, CheckpointError, PromptError
from bundles.io.cases import parse_cases
from bundles.io.output_folder import check_output_dir
from bundles.sat.prompts import TextPromptCheck, TextPrompts
from bundles.sat.vocabulary import load_sat_vocabulary


def test_all_missing_weights_are_named_at_once(tmp_path):
    present = tmp_path / "model.pt"
    present.write_bytes(b"x")
    with pytest.raises(CheckpointError) as info:
        check_model_files([tmp_path / "missing_a.pt", present, tmp_path / "missing_b.pt"], tmp_path, "convert them")
    assert "missing_a.pt" in str(info.value) and "missing_b.pt" in str(info.value) and "model.pt," not in str(info.value)
    assert "; convert them, or point --model_dir" in str(info.value)
    check_model_files([present], tmp_path, "convert them")


def test_output_folder_behind_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(BundleInputError, match="is a file"):
        check_output_dir(blocker / "out")
    check_output_dir(tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()


def test_cases_are_checked_before_the_model(tmp_path):
    image = tmp_path / "ct.nii.gz"
    image.write_bytes(b"placeholder")
    check = TextPromptCheck(load_sat_vocabulary())
    (case, prompts), = prepare_cases({"image": str(image), "prompts": [" Liver"], "modality": "CT", "frame": 2}, check)
    assert (prompts, case.frame) == (TextPrompts("ct", ["liver"]), 2)
    with pytest.raises(PromptError, match="liver"):
        prepare_cases({"image": str(image), "prompts": ["livr"], "modality": "ct"}, check)
    with pytest.raises(BundleInputError, match="missing.nii.gz"):
        prepare_cases({"image": [str(image), str(tmp_path / "missing.nii.gz")], "prompts": ["liver"], "modality": "ct"}, check)
    assert parse_cases({"image": str(image), "prompts": ["liver"], "modality": "ct"})[0].frame is None


@pytest.mark.parametrize(
    "input_dict, match",
    [
        ({"modality": "ct"}, "no prompts given"),
        ({"prompts": ["liver"]}, "no modality given"),
        ({"prompts": [[10, 20, 30]], "modality": "ct"}, "must be a string"),
        ({"prompts": {"x": 1}, "modality": "ct"}, "must be text terms"),
    ],
)
def test_sat_prompt_check_names_the_offending_value(tmp_path, input_dict, match):
    """Prompts are opaque to the core's case parsing; SAT's check refuses what is not text for it."""
    image = tmp_path / "ct.nii.gz"
    image.write_bytes(b"placeholder")
    (case,) = parse_cases({"image": str(image), **input_dict})
    with pytest.raises(PromptError, match=match):
        TextPromptCheck(load_sat_vocabulary())(case)


def test_legend_terms_are_the_default_prompts_of_an_evaluation_case(tmp_path):
    (case,) = parse_cases({"image": str(tmp_path / "ct.nii.gz"), "modality": "ct", "legend": {"2": "spleen", "1": "liver"}})
    assert case.prompts is None
    assert TextPromptCheck(load_sat_vocabulary())(case) == TextPrompts("ct", ["liver", "spleen"])
