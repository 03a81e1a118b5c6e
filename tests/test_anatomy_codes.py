"""SNOMED CT codes of structure names (bundles/data/anatomy_codes.json): every listed name, laterality, the
class names of the prompt-free bundles, and agreement with DICOM PS3.16 as pydicom lists it."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from pydicom.sr.codedict import CONCEPTS

from bundles.data.anatomy_codes import structure_codes
from bundles.data.phantom import PHANTOM_LEGEND

REPO_ROOT = Path(__file__).resolve().parents[1]
TABLE = json.loads(resources.files("bundles.data").joinpath("anatomy_codes.json").read_text(encoding="utf-8"))
ENTRIES = [*TABLE["structures"], *TABLE["sided_structures"]]
UNKNOWN = TABLE["unknown_structure"]["code"]


def test_every_listed_name_resolves_to_its_own_code():
    assert UNKNOWN == "91723000" and structure_codes("no such organ").type.value == UNKNOWN
    names = [name for entry in ENTRIES for name in entry["names"]]
    assert len(names) == len(set(names)), "a name is listed twice"
    for entry in ENTRIES:
        for name in entry["names"]:
            codes = structure_codes(name)
            assert (codes.type.value, codes.type.meaning, codes.type.scheme) == (entry["code"], entry["meaning"], "SCT"), name
            assert codes.category.value == "123037004" and codes.laterality is None, name


def test_codes_are_those_of_dicom_ps3_16():
    known = {(value, meaning) for concept in CONCEPTS["SCT"].values() for value, (meaning, _) in concept.items()}
    for entry in [*ENTRIES, TABLE["category"], TABLE["unknown_structure"], *TABLE["laterality"].values()]:
        assert (entry["code"], entry["meaning"]) in known, entry


def test_sides_modalities_and_spelling():
    left = structure_codes("LEFT_Kidney")
    assert (left.type.meaning, left.laterality.value) == ("Kidney", "7771000")
    assert structure_codes("right adrenal gland").laterality.value == "24028007"
    assert structure_codes("ct_urinary bladder").type.value == "89837001"
    assert structure_codes("MR liver").type.value == "10200004"
    heart = structure_codes("left heart ventricle")  # the side is part of the structure: no modifier
    assert (heart.type.value, heart.laterality) == ("87878005", None)
    for name in ("liver tumor", "left lung upper lobe", "left", "ct"):  # a lesion, unlisted, bare words
        assert structure_codes(name).type.value == UNKNOWN, name


def test_class_names_of_the_bundles_are_coded():
    """SAMed's class names (its configs) and the organs the demo jobs name (the phantom's legend; SAM-UNet names
    its objects per prompt, its demo job these organs)."""
    names = {*PHANTOM_LEGEND.values()}
    for config in ("samed_lora/configs/inference.json", "samed_lora/configs/train.json"):
        names |= set(json.loads((REPO_ROOT / config).read_text(encoding="utf-8"))["class_names"])
    assert {"aorta", "gallbladder", "left kidney", "liver"} <= names
    for name in names:
        assert structure_codes(name).type.value != UNKNOWN, name
