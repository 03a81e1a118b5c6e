"""The MNI152 demo case built from nilearn's template and tissue probability maps."""

from __future__ import annotations

import numpy as np
import pytest

from bundles.data.mni import MNI_LEGEND, make_mni_case


@pytest.fixture(scope="module")
def case():
    return make_mni_case()


def test_image_and_geometry(case):
    assert case.image.dtype == np.float32 and case.labels.dtype == np.uint8
    assert case.image.shape == case.labels.shape == (197, 233, 189)
    assert np.isfinite(case.image).all() and case.image.max() > 0
    np.testing.assert_allclose(np.linalg.norm(case.affine[:3, :3], axis=0), (1.0, 1.0, 1.0))
    # The template is symmetric about the midline x = 0 mm; the MNI origin lies inside the brain.
    brain = np.argwhere(case.labels > 0).mean(axis=0)
    assert abs((case.affine @ np.append(brain, 1.0))[0]) < 2.0
    i, j, k = np.rint(np.linalg.inv(case.affine) @ [0.0, 0.0, 0.0, 1.0])[:3].astype(int)
    assert (case.labels[i - 10 : i + 11, j - 10 : j + 11, k - 10 : k + 11] > 0).mean() > 0.3
    assert case.legend == MNI_LEGEND == {1: "grey matter", 2: "white matter"}


def test_labels_are_non_empty_disjoint_tissues(case):
    grey, white = case.labels == 1, case.labels == 2
    assert set(np.unique(case.labels)) == {0, 1, 2}
    # An adult brain holds several hundred ml of each tissue (1 voxel = 1 ml / 1000).
    assert 300_000 < grey.sum() < 1_500_000 and 200_000 < white.sum() < 1_000_000
    assert not (grey & white).any()
    # White matter is brighter than grey matter on T1.
    assert case.image[white].mean() > case.image[grey].mean()


def test_labels_follow_the_probability_threshold(case):
    from nilearn.datasets import load_mni152_gm_template, load_mni152_wm_template

    grey_p = load_mni152_gm_template(resolution=1).get_fdata()
    white_p = load_mni152_wm_template(resolution=1).get_fdata()
    assert (grey_p[case.labels == 1] > 0.5).all() and (white_p[case.labels == 2] > 0.5).all()
    background = case.labels == 0
    assert not ((grey_p > 0.5) & (grey_p >= white_p) & background).any()


def test_make_demo_data_mni_writes_dataset(tmp_path, case):
    import json

    import nibabel as nib

    from tools.make_demo_data import mni

    jsonl = mni(tmp_path)
    (entry,) = [json.loads(line) for line in open(jsonl, encoding="utf-8")]
    assert entry["modality"] == "mri" and entry["dataset"] == "mni152"
    assert entry["label"] == ["grey matter", "white matter"]
    assert entry["legend"] == {"1": "grey matter", "2": "white matter"}
    labels = nib.load(entry["mask"])
    np.testing.assert_array_equal(np.asarray(labels.dataobj), case.labels)
    np.testing.assert_allclose(labels.affine, case.affine)
    assert sorted(p.name for p in (tmp_path / "mni152").iterdir()) == ["image.nii.gz", "label.nii.gz", "legend.json"]
