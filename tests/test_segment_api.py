"""One Python entry point for every family: ``bundles.segment`` (masks in memory, or the usual files) and
``bundles.open_session``, over the core's ``predict_case`` (which the server runs too), with the tiny models of
``tests/live_server.py`` (every mask logit positive: a mask shows where the pipeline put the window, box or
slices) on the oblique LPS phantom."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import bundles
from bundles.errors import CheckpointError, ConfigurationError, PromptError
from bundles.io.readers import read_image
from bundles.io.writers import label_map
from tests.live_server import tiny_model_dirs
from tests.test_core_toy_family import _oblique_lps_phantom

CLICK = [24, 20, 10]  #: the phantom's bright ellipsoid centre (voxel indices)
#: bundle -> the prompts of one case and the names the answer must carry
CASES = {
    "sat_nano": ({"prompts": ["liver", "spleen"], "modality": "ct"}, ["liver", "spleen"]),
    "sam_med3d": ({"points": [CLICK], "point_labels": [1], "name": "blob"}, ["blob"]),
    "samed_lora": ({}, ["liver", "spleen"]),
    "sam_unet": ({"objects": [{"name": "blob", "box": [14, 12, 6, 34, 28, 12]}]}, ["blob"]),
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_sat_model):
    root = tmp_path_factory.mktemp("segment_api")
    image, _ = _oblique_lps_phantom(root)
    return {"image": image, "models": tiny_model_dirs(root, tiny_sat_model), "root": root}


@pytest.mark.parametrize("bundle", sorted(CASES))
def test_segment_gives_every_family_masks_on_the_input_grid_and_the_same_in_files(setup, bundle, tmp_path):
    prompts, names = CASES[bundle]
    masks, got_names, grid = bundles.segment(bundle, setup["image"], model_dir=setup["models"][bundle], device="cpu", **prompts)
    _, source = read_image(setup["image"])
    assert got_names == names and masks.dtype == bool and masks.shape == (len(names), *source.shape)
    assert grid.shape == source.shape and np.allclose(grid.affine, source.affine)
    assert masks[0].any(), "the first class has voxels (every logit positive; SAMed's first class wins every tie)"
    folder = bundles.segment(bundle, setup["image"], tmp_path, model_dir=setup["models"][bundle], device="cpu", **prompts)
    (written,) = list(folder.glob("*/seg.nii.gz"))
    assert np.array_equal(np.asarray(nib.load(written).dataobj), label_map(masks)), "the files hold the in-memory answer"


def test_a_click_session_comes_from_the_same_entry_point(setup):
    session = bundles.open_session("sam_med3d", setup["models"]["sam_med3d"], device="cpu")
    image, grid = read_image(setup["image"])
    session.set_image(image[0], grid, "ct")
    mask = session.add_click(np.array(CLICK, dtype=float), True, "blob")
    masks, _, _ = bundles.segment("sam_med3d", setup["image"], model_dir=setup["models"]["sam_med3d"], device="cpu", **CASES["sam_med3d"][0])
    assert np.array_equal(mask, masks[0]), "one click in a session = the same click through segment"
    with pytest.raises(ConfigurationError, match="samed_lora has no click session"):
        bundles.open_session("samed_lora", setup["models"]["samed_lora"])


def test_prompts_are_checked_before_the_weights(setup, tmp_path):
    with pytest.raises(PromptError, match="livr"):
        bundles.segment("sat_nano", setup["image"], model_dir=tmp_path, prompts=["livr"], modality="ct")
    with pytest.raises(CheckpointError, match="model.pt"):
        bundles.segment("sat_nano", setup["image"], model_dir=tmp_path, prompts=["liver"], modality="ct")


def test_a_keyword_that_is_no_case_field_is_refused_with_the_closest(setup):
    with pytest.raises(ConfigurationError, match="prompt is no case field of this bundle .*did you mean prompts"):
        bundles.segment("sat_nano", setup["image"], model_dir=setup["models"]["sat_nano"], prompt=["liver"], modality="ct")
    with pytest.raises(ConfigurationError, match="boxes is no case field"):
        bundles.segment("sam_med3d", setup["image"], model_dir=setup["models"]["sam_med3d"], boxes=[[1, 2, 3, 4, 5, 6]])
