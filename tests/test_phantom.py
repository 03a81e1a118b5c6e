"""The synthetic CT phantom: determinism, anatomy, HU ranges, geometry, SAT label names."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bundles.data.phantom import PHANTOM_LEGEND, make_ct_phantom
from bundles.errors import ConfigurationError

# Expected mean HU per organ: the module's values ± jitter, widened for smoothing at the borders and, for the
# stomach, an air pocket of up to about a tenth of its volume; kidneys mix cortex (150) and medulla (90).
HU_RANGES = {
    "liver": (45, 75),
    "spleen": (35, 65),
    "left kidney": (100, 150),
    "right kidney": (100, 150),
    "aorta": (160, 210),
    "stomach": (-150, 35),
    "pancreas": (30, 60),
    "gallbladder": (-5, 30),
}
# Plausible voxel counts on the default 192 x 160 x 48 grid at 0.8 x 0.8 x 3 mm.
VOXEL_RANGES = {
    "liver": (20_000, 150_000),
    "spleen": (2_000, 30_000),
    "left kidney": (1_500, 20_000),
    "right kidney": (1_500, 20_000),
    "aorta": (2_000, 20_000),
    "stomach": (2_000, 40_000),
    "pancreas": (500, 10_000),
    "gallbladder": (300, 5_000),
}


@pytest.fixture(scope="module")
def phantom():
    return make_ct_phantom(seed=0)


def test_same_seed_same_phantom_and_different_seeds_differ(phantom):
    again = make_ct_phantom(seed=0)
    np.testing.assert_array_equal(again.image, phantom.image)
    np.testing.assert_array_equal(again.labels, phantom.labels)
    np.testing.assert_array_equal(again.affine, phantom.affine)
    other = make_ct_phantom(seed=1)
    assert not np.array_equal(other.labels, phantom.labels)
    assert not np.array_equal(other.image, phantom.image)


def test_arrays_and_affine(phantom):
    assert phantom.image.shape == phantom.labels.shape == (192, 160, 48)
    assert phantom.image.dtype == np.int16 and phantom.labels.dtype == np.uint8
    assert not np.allclose(phantom.affine, np.eye(4))
    np.testing.assert_allclose(np.linalg.norm(phantom.affine[:3, :3], axis=0), (0.8, 0.8, 3.0))
    assert phantom.spacing == pytest.approx((0.8, 0.8, 3.0))
    assert nib.aff2axcodes(phantom.affine) == ("L", "P", "S")
    assert np.any(phantom.affine[:3, 3] != 0)


def test_custom_grid_spacing():
    small = make_ct_phantom(seed=3, shape=(64, 56, 20), spacing=(2.0, 2.0, 5.0))
    assert small.image.shape == (64, 56, 20)
    np.testing.assert_allclose(np.linalg.norm(small.affine[:3, :3], axis=0), (2.0, 2.0, 5.0))
    assert set(np.unique(small.labels)) == {0, *PHANTOM_LEGEND}


@pytest.mark.parametrize("seed", [0, 5])
def test_every_organ_present_with_plausible_size_and_hu(seed, phantom):
    case = phantom if seed == 0 else make_ct_phantom(seed=seed)
    for value, name in case.legend.items():
        mask = case.labels == value
        low, high = VOXEL_RANGES[name]
        assert low <= mask.sum() <= high, (name, int(mask.sum()))
        low, high = HU_RANGES[name]
        assert low <= case.image[mask].mean() <= high, (name, float(case.image[mask].mean()))
    assert case.image.min() <= -950  # air outside the body
    assert set(np.unique(case.labels)) == {0, *case.legend}


def _centroid_ras(phantom, value: int) -> np.ndarray:
    index = np.argwhere(phantom.labels == value).mean(axis=0)
    return (phantom.affine @ np.append(index, 1.0))[:3]


def test_organs_on_the_correct_side_in_world_coordinates(phantom):
    # RAS+: +x is the patient's right, +y anterior.
    liver, spleen = _centroid_ras(phantom, 1), _centroid_ras(phantom, 2)
    left_kidney, right_kidney = _centroid_ras(phantom, 3), _centroid_ras(phantom, 4)
    aorta, stomach = _centroid_ras(phantom, 5), _centroid_ras(phantom, 6)
    gallbladder = _centroid_ras(phantom, 8)
    assert liver[0] > aorta[0] > spleen[0]
    assert right_kidney[0] > aorta[0] > left_kidney[0]
    assert gallbladder[0] > stomach[0]
    assert stomach[1] > aorta[1]
    # 20 mm posterior of the aorta lies the (unlabelled) vertebral body, ~400 HU.
    behind = np.linalg.inv(phantom.affine) @ np.append(aorta - [0.0, 20.0, 0.0], 1.0)
    i, j, k = np.rint(behind[:3]).astype(int)
    assert phantom.image[i - 2 : i + 3, j - 2 : j + 3, k].mean() > 250

def test_legend_names_are_sat_ct_terms(phantom, repo_root):
    vocabulary = json.loads((repo_root / "bundles/sat/data/sat_terminology_list.json").read_text())
    terms = set(vocabulary["all"])
    assert phantom.legend == PHANTOM_LEGEND
    assert all(f"ct_{name}" in terms for name in phantom.legend.values())


def test_bad_geometry_is_refused():
    with pytest.raises(ConfigurationError, match="shape"):
        make_ct_phantom(seed=0, shape=(8, 160, 48))
    with pytest.raises(ConfigurationError, match="spacing"):
        make_ct_phantom(seed=0, spacing=(0.8, -0.8, 3.0))


def test_make_demo_data_phantoms_writes_dataset(tmp_path, phantom):
    from tools.make_demo_data import phantoms

    jsonl = phantoms(tmp_path, n=2, seed=0)
    lines = [json.loads(line) for line in open(jsonl, encoding="utf-8")]
    assert len(lines) == 2
    first = lines[0]
    assert first["modality"] == "ct" and first["dataset"] == "phantom"
    assert first["label"] == list(PHANTOM_LEGEND.values())
    assert first["legend"] == {str(k): v for k, v in PHANTOM_LEGEND.items()}
    image, mask = nib.load(first["image"]), nib.load(first["mask"])
    np.testing.assert_array_equal(np.asarray(image.dataobj), phantom.image)
    np.testing.assert_array_equal(np.asarray(mask.dataobj), phantom.labels)
    np.testing.assert_allclose(image.affine, phantom.affine, atol=1e-4)
    assert image.get_data_dtype() == np.int16 and mask.get_data_dtype() == np.uint8
    case_dir = tmp_path / "phantom_001"
    assert json.loads((case_dir / "legend.json").read_text()) == first["legend"]
    assert sorted(p.name for p in case_dir.iterdir()) == ["image.nii.gz", "label.nii.gz", "legend.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.jsonl", "phantom_000", "phantom_001"]


def test_make_demo_data_help_explains_every_option(repo_root):
    import os
    import subprocess
    import sys

    def help_text(*command: str) -> str:  # fire prints help on stderr
        result = subprocess.run(
            [sys.executable, "-m", "tools.make_demo_data", *command, "--help"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            env={**os.environ, "PAGER": "cat"},
            check=True,
        )
        return result.stdout + result.stderr

    overview = help_text()
    for option in ("phantoms", "mni", "--output_dir", "--n", "--seed", "--dicom", "--resolution"):
        assert option in overview
    details = help_text("phantoms")
    for text in ("OUTPUT_DIR", "--n", "number of phantoms", "--seed", "seed + k", "--dicom", "DICOM CT series"):
        assert text in details


def test_make_demo_data_phantoms_dicom_reads_back(tmp_path):
    import pydicom

    from tools.make_demo_data import phantoms

    phantoms(tmp_path, n=1, seed=4, dicom=True)
    expected = make_ct_phantom(seed=4)
    files = sorted((tmp_path / "phantom_000" / "dicom").iterdir())
    assert len(files) == 48
    slices = [pydicom.dcmread(f) for f in files]
    assert {ds.PatientID for ds in slices} == {"PHANTOM004"}
    # DICOM pixel rows run along Y and columns along X; HU = stored * slope + intercept.
    hu = np.stack([ds.pixel_array.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices], -1)
    np.testing.assert_array_equal(hu, expected.image)
    # ImagePositionPatient of slice k is voxel (0, 0, k) in LPS = RAS with x and y negated.
    for k in (0, 47):
        ras = expected.affine @ [0.0, 0.0, k, 1.0]
        lps = [-ras[0], -ras[1], ras[2]]
        np.testing.assert_allclose([float(v) for v in slices[k].ImagePositionPatient], lps, atol=1e-3)
