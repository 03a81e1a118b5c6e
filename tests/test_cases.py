"""Turning --input_dict into cases: single image, list, case files with relative paths, clear errors."""

from __future__ import annotations

import json

import pytest

from bundles.errors import BundleInputError, ConfigurationError
from bundles.io.cases import case_id_from_path, parse_cases


def test_single_image_and_list(tmp_path):
    (case,) = parse_cases({"image": "ct.nii.gz", "prompts": ["liver"], "modality": "ct"})
    assert (case.id, case.prompts, case.modality) == ("ct", ["liver"], "ct")
    cases = parse_cases({"image": ["a/ct.nii.gz", "b/ct.nii.gz"], "prompts": "liver", "modality": "ct"})
    assert [c.id for c in cases] == ["ct", "ct_2"] and cases[0].prompts == "liver"  # opaque: the family normalises


def test_case_file_paths_are_relative_to_the_file_and_fields_fall_back(tmp_path):
    lines = [{"image": "img/a.nii.gz", "mask": "lab/a.nii.gz", "legend": {"1": "liver"}},
             {"image": "/abs/b.nrrd", "prompts": ["spleen"], "id": "bee", "dataset": "d"}]
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    a, b = parse_cases({"cases": str(path), "prompts": ["liver"], "modality": "ct"})
    assert a.image == tmp_path / "img/a.nii.gz" and a.mask == tmp_path / "lab/a.nii.gz" and a.legend == {1: "liver"}
    assert a.prompts == ["liver"] and b.prompts == ["spleen"] and b.id == "bee" and b.dataset == "d"


def test_ids_from_paths(tmp_path):
    assert case_id_from_path(tmp_path / "patient 1.nii.gz") == "patient_1"
    assert case_id_from_path(tmp_path / "dicom") == "dicom"


@pytest.mark.parametrize(
    "input_dict, match",
    [
        ({}, "needs 'image'"),
        ("ct.nii.gz", "must be a dict"),
    ],
)
def test_incomplete_input_dict(input_dict, match):
    with pytest.raises(ConfigurationError, match=match):
        parse_cases(input_dict)


def test_broken_case_file(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text("{not json")
    with pytest.raises(BundleInputError, match="cases.jsonl"):
        parse_cases({"cases": str(path), "prompts": ["liver"], "modality": "ct"})
    with pytest.raises(BundleInputError, match="not found"):
        parse_cases({"cases": str(tmp_path / "missing.jsonl")})


def test_prompts_and_modality_are_opaque_to_the_core():
    """Clicks, boxes or no prompts at all pass through unchanged; each family checks its own."""
    clicks = {"points": [[10, 20, 30]], "point_labels": [1]}
    (case,) = parse_cases({"image": "ct.nii.gz", "prompts": clicks})
    assert case.prompts == clicks and case.modality is None
    (case,) = parse_cases({"image": "ct.nii.gz"})
    assert case.prompts is None


def test_inline_case_list_takes_top_level_defaults():
    cases = parse_cases({"cases": [{"image": "a.nii.gz", "id": "one"}, {"image": "b.nii.gz", "modality": "mri"}], "modality": "ct"})
    assert [c.id for c in cases] == ["one", "b"] and [c.modality for c in cases] == ["ct", "mri"]
    with pytest.raises(ConfigurationError, match="'cases' must list dicts"):
        parse_cases({"cases": ["a.nii.gz"]})
