"""SAT vocabulary: normalisation, strict matching with suggestions, synonyms, TotalSegmentator names, glued terms,
modalities, regions."""

from __future__ import annotations

import json
import logging

import pytest

from bundles.data.totalsegmentator_names import totalsegmentator_classes, totalsegmentator_terms
from bundles.errors import ConfigurationError, PromptError
from bundles.io.modality import normalize_modality
from bundles.sat.vocabulary import LESION_REGION, SATVocabulary, load_sat_vocabulary


@pytest.fixture(scope="module")
def vocab() -> SATVocabulary:
    return load_sat_vocabulary()


def test_packaged_vocabulary_counts(vocab):
    assert len(vocab) == 498
    assert [len(vocab.terms(m)) for m in ("ct", "mri", "pet", "us")] == [306, 189, 3, 0]


def test_case_and_space_normalisation(vocab):
    assert vocab.match(["Liver", "  LEFT   kidney ", "Right\tLung  Upper lobe"], " CT ") == [
        "liver",
        "left kidney",
        "right lung upper lobe",
    ]


@pytest.mark.parametrize("given,expected", [("ct", "ct"), (" MRI", "mri"), ("Mr", "mri"), ("PET ", "pet"), ("us", "us")])
def test_accepted_modalities(given, expected):
    assert normalize_modality(given) == expected


@pytest.mark.parametrize("bad", ["ct scan", "t1 mri", "mri-t2", "ultrasound", "", "c t"])
def test_unknown_modality_lists_accepted_values(bad):
    with pytest.raises(PromptError, match="accepted values are ct, mr, mri, pet, us"):
        normalize_modality(bad)


def test_unknown_term_names_modality_and_suggests(vocab):
    with pytest.raises(PromptError) as info:
        vocab.match(["liver", "left kidny"], "ct")
    message = str(info.value)
    assert "'left kidny'" in message and "for ct" in message
    assert "did you mean" in message and "'left kidney'" in message
    suggestions = message.split("did you mean:")[1]
    assert suggestions.count("'") // 2 <= 5


def test_term_of_another_modality_says_so(vocab):
    with pytest.raises(PromptError, match=r"'brain tumor'.*exists only for mri"):
        vocab.match(["brain tumor"], "ct")
    assert vocab.match(["brain tumor"], "mr") == ["brain tumor"]


@pytest.mark.parametrize(
    "glued,parts",
    [("liver spleen", ("'liver'", "'spleen'")), ("liverspleen", ("'liver'", "'spleen'")), ("liver" "spleen" "pancreas", ("'pancreas'",))],
)
def test_glued_terms_are_refused(vocab, glued, parts):
    with pytest.raises(PromptError, match="glued together") as info:
        vocab.match([glued], "ct")
    assert all(p in str(info.value) for p in parts)


def test_duplicates_removed_with_warning(vocab, caplog):
    with caplog.at_level(logging.WARNING, logger="bundles.sat.vocabulary"):
        assert vocab.match(["liver", "spleen", " Liver"], "ct") == ["liver", "spleen"]
    assert "more than once" in caplog.text and "'liver'" in caplog.text


@pytest.mark.parametrize("terms", [[], "liver", ["liver", "  "], ["liver", None]])
def test_empty_or_malformed_prompt_lists(vocab, terms):
    with pytest.raises(PromptError):
        vocab.match(terms, "ct")


def test_free_text_passes_with_warning(vocab, caplog):
    with caplog.at_level(logging.WARNING, logger="bundles.sat.vocabulary"):
        assert vocab.match(["Hepatic Flexure", "liver"], "ct", allow_free_text=True) == ["hepatic flexure", "liver"]
    assert "free text" in caplog.text


def test_ultrasound_has_no_vocabulary(vocab):
    with pytest.raises(PromptError, match="no terms for modality .us."):
        vocab.match(["liver"], "us")


def test_region_of(vocab):
    assert vocab.region_of("Liver", "ct") == "abdomen"
    assert vocab.region_of("left putamen", "mr") == "brain"
    # lesions are reported as such, whatever their anatomical group
    assert vocab.region_of("liver tumor", "ct") == LESION_REGION
    assert vocab.region_of("brain tumor", "mri") == LESION_REGION
    with pytest.raises(PromptError, match="exists only for ct"):
        vocab.region_of("liver", "pet")


def test_malformed_vocabulary_file(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"all": ["ct_liver", "xray_hand"], "region_based": {}, "abnormal": []}))
    with pytest.raises(ConfigurationError, match="xray_hand"):
        SATVocabulary.from_file(path)
    path.write_text(json.dumps({"all": ["ct_liver"]}))
    with pytest.raises(ConfigurationError, match="region_based"):
        SATVocabulary.from_file(path)


@pytest.mark.parametrize(
    "prompt,modality,term",
    [("hepatic tumor", "ct", "liver tumor"), ("Hepatic Tumour", "mri", "liver tumor"), ("renal cyst", "ct", "kidney cyst"),
     ("left renal cyst", "ct", "left kidney cyst"), ("suprarenal gland", "ct", "adrenal gland"), ("cardiac ventricle", "ct", "heart ventricle"),
     ("lung embolism", "ct", "pulmonary embolism"), ("cerebral edema", "mri", "brain edema"), ("gray matter", "mri", "grey matter"),
     ("left atrial", "ct", "left heart atrium"), ("vesical", "ct", "urinary bladder")],
)
def test_anatomical_synonyms_match(vocab, prompt, modality, term):
    assert vocab.match([prompt], modality) == [term]


def test_anatomical_synonyms_in_suggestions(vocab):
    with pytest.raises(PromptError, match=r"'hepatic tumors' is not in the SAT vocabulary for ct; did you mean: 'liver tumor', "):
        vocab.match(["hepatic tumors"], "ct")
    assert vocab.suggestions("hepatic cyst", "ct")[:2] == ["liver tumor", "liver"]


@pytest.mark.parametrize(
    "prompt,term",
    [("vena_cava_inferior", "inferior vena cava"), ("Vena Cava Superior", "superior vena cava"), ("kidney left", "left kidney"),
     ("iliac_vein_left", "left iliac vena")],
)
def test_words_in_another_order_match(vocab, prompt, term):
    assert vocab.match([prompt], "ct") == [term]


def test_words_of_two_terms_are_refused():
    vocab = SATVocabulary({"all": ["ct_costal cartilage", "ct_rib cartilage"], "region_based": {}, "abnormal": []})
    vocab.add_synonyms({"costal": "rib"})
    assert vocab.match(["Costal Cartilage"], "ct") == ["costal cartilage"]
    with pytest.raises(PromptError, match="did you mean: 'costal cartilage', 'rib cartilage'"):
        vocab.match(["cartilage costal"], "ct")


def test_every_totalsegmentator_class_maps_or_is_explained(vocab):
    """TotalSegmentator v1 ``total_v1``, v2 ``total`` and ``total_mr`` (its map_to_binary.py), 128 names."""
    classes = totalsegmentator_classes()
    assert len(classes) == 128
    assert {"atrial_appendage_left", "brachiocephalic_trunk", "kidney_cyst_left", "vertebrae_S1", "costal_cartilages",
            "heart_myocardium", "face", "lung_left", "intervertebral_discs"} <= set(classes)
    lacking = set()
    for name, term in classes.items():
        try:
            assert vocab.match([name], "ct") == [term]
        except PromptError as error:
            assert "SAT has no such class for ct" in str(error) and "`medseg vocabulary --modality ct" in str(error)
            lacking.add(name)
    assert lacking == {"face", "intervertebral_discs"}
    assert vocab.match(["intervertebral_discs", "kidney_left"], "mri") == ["intervertebral discs", "left kidney"]
    for modality in ("ct", "mri"):  # the example scans' legends keep a part of them
        assert totalsegmentator_terms(modality).items() <= classes.items()


def test_class_sat_lacks_says_so(vocab):
    with pytest.raises(PromptError) as info:
        vocab.match(["lung_left"], "mri")
    assert str(info.value) == ("text prompt 'lung_left' (left lung): SAT has no such class for mri (it exists only for ct: check the "
                               "modality); list its 189 mri terms with `medseg vocabulary --modality mri`")
    with pytest.raises(PromptError, match=r"'heart': SAT has no such class for mri .*closest: 'heart atrium', 'heart ventricle', .*"
                                          r"`medseg vocabulary --modality mri --search heart`"):
        vocab.match(["heart"], "mri")


def test_unknown_term_without_close_terms_names_the_listing_command(vocab):
    with pytest.raises(PromptError) as info:
        vocab.match(["xyzzy"], "ct")
    assert str(info.value) == "text prompt 'xyzzy' is not in the SAT vocabulary for ct; list its 306 ct terms with `medseg vocabulary --modality ct`"
    assert "terms(" not in str(info.value)
