"""Checks the inference job runs before any model is loaded: weights present, output folder writable,
prompts and paths of every case valid."""

from __future__ import annotations

import pytest

from bundles.engines.cases import parse_cases
from bundles.engines.text_prompted_inference import check_model_files, check_output_dir, prepare_cases
from bundles.errors import BundleInputError, CheckpointError, PromptError
from bundles.prompts.vocabulary import load_sat_vocabulary


def test_all_missing_weights_are_named_at_once(tmp_path):
    present = tmp_path / "model.pt"
    present.write_bytes(b"x")
    with pytest.raises(CheckpointError) as info:
        check_model_files([tmp_path / "missing_a.pt", present, tmp_path / "missing_b.pt"], tmp_path)
    assert "missing_a.pt" in str(info.value) and "missing_b.pt" in str(info.value) and "model.pt," not in str(info.value)
    check_model_files([present], tmp_path)


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
    vocabulary = load_sat_vocabulary()
    (case, modality, terms), = prepare_cases({"image": str(image), "prompts": [" Liver"], "modality": "CT", "frame": 2}, vocabulary)
    assert (modality, terms, case.frame) == ("ct", ["liver"], 2)
    with pytest.raises(PromptError, match="liver"):
        prepare_cases({"image": str(image), "prompts": ["livr"], "modality": "ct"}, vocabulary)
    with pytest.raises(BundleInputError, match="missing.nii.gz"):
        prepare_cases({"image": [str(image), str(tmp_path / "missing.nii.gz")], "prompts": ["liver"], "modality": "ct"}, vocabulary)
    assert parse_cases({"image": str(image), "prompts": ["liver"], "modality": "ct"})[0].frame is None
