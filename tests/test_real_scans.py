"""The shipped real scans: DICOM geometry and HU, world-coordinate reference masks, output round trips."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import CropForeground, Orientation, Spacing

from bundles.data.examples import EXAMPLES, reference_masks
from bundles.io.dicom_seg import read_dicom_seg
from bundles.io.readers import read_image
from bundles.io.resample import resample_to_grid
from bundles.io.writers import write_segmentation
from bundles.sat.vocabulary import load_sat_vocabulary

SERIES = EXAMPLES["ct_dicom_series"]


@pytest.fixture(scope="module")
def series():
    return read_image(SERIES.image)


@pytest.fixture(scope="module")
def series_liver(series):
    _, grid = series
    liver_id = next(i for i, name in SERIES.label_names.items() if name == "liver")
    labels, label_grid = read_image(SERIES.reference)
    assert label_grid.orientation == "LAS" and grid.orientation == "LPS"
    on_series = resample_to_grid(labels, label_grid.affine, grid, mode="nearest")[0].numpy()
    return np.isclose(on_series, liver_id)


def test_dicom_series_geometry_and_hu(series):
    image, grid = series
    assert grid.shape == (512, 512, 20) and image.shape == (1, 512, 512, 20)
    np.testing.assert_allclose(grid.spacing, (0.977, 0.977, 2.0), atol=1e-3)
    assert float(image.min()) == -1024.0 and float(image.max()) == 1839.0
    assert len(grid.dicom_files) == 20
    # InstanceNumber runs against z in this series: the volume follows ImagePositionPatient instead.
    assert grid.dicom_files[0].endswith("CT0286.dcm") and grid.dicom_files[-1].endswith("CT0267.dcm")
    np.testing.assert_allclose(grid.affine[:3, 3], (249.512, 437.512, -804.5), atol=1e-3)


def test_reference_liver_in_world_coordinates_has_liver_hu(series, series_liver):
    image, grid = series
    mean_hu = float(image[0].numpy()[series_liver].mean())
    assert 40.0 < mean_hu < 200.0
    index_aligned = np.asarray(nib.load(SERIES.reference).dataobj) == 5  # comparing by index ignores the LAS flip
    assert float(image[0].numpy()[index_aligned].mean()) < mean_hu - 20.0
    np.testing.assert_array_equal(reference_masks(SERIES, ["liver"], grid)[0], series_liver)


def test_prediction_written_back_as_nifti_and_dicom_seg(series, series_liver, tmp_path):
    _, grid = series
    paths = write_segmentation(series_liver[None], ["liver"], grid, tmp_path)
    written = nib.load(paths["seg"])
    assert written.shape == grid.shape
    np.testing.assert_allclose(written.affine, grid.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(written.dataobj) == 1, series_liver)
    masks, names = read_dicom_seg(paths["dicom_seg"], grid)
    assert names == ["liver"]
    np.testing.assert_array_equal(masks[0], series_liver)
    assert json.loads(paths["legend"].read_text())["dicom_seg"] == "seg.dcm"


def test_mr_chain_returns_to_its_lps_grid(tmp_path):
    case = EXAMPLES["mr_abdomen_small"]
    image, grid = read_image(case.image)
    assert grid.orientation == "LPS"
    processed = Orientation(axcodes="RAS", labels=None)(image)
    processed = Spacing(pixdim=(1.0, 1.0, 3.0), mode="bilinear")(processed)
    processed = CropForeground(select_fn=lambda x: x > 20, margin=2)(processed)
    assert processed.shape[1:] != image.shape[1:]
    back = resample_to_grid(processed, processed.affine, grid, mode="bilinear")
    assert tuple(back.shape[1:]) == grid.shape
    liver = reference_masks(case, ["liver"], grid)[0]
    original, restored = image[0].numpy()[liver], back[0].numpy()[liver]
    assert np.corrcoef(original, restored)[0, 1] > 0.9
    paths = write_segmentation((back[0].numpy() > 60)[None], ["bright"], grid, tmp_path)
    written = nib.load(paths["seg"])
    source = nib.load(case.image)
    assert written.shape == source.shape and np.array_equal(written.affine, source.affine)
    assert written.header["pixdim"].tobytes() == source.header["pixdim"].tobytes()


@pytest.mark.parametrize("key", list(EXAMPLES))
def test_reference_label_names_map_to_sat_terms_of_the_modality(key):
    case = EXAMPLES[key]
    vocabulary = set(load_sat_vocabulary().terms(case.modality))
    labels, _ = read_image(case.reference)
    present = {case.label_names[int(v)] for v in np.unique(labels.numpy()) if v != 0}
    mapped = {name: case.sat_terms[name] for name in present if name in case.sat_terms}
    assert {"liver", "spleen", "aorta"} <= set(mapped)
    assert {name: term for name, term in mapped.items() if term not in vocabulary} == {}


@pytest.mark.parametrize("key", list(EXAMPLES))
def test_prompt_terms_are_valid_and_keep_the_main_organs(key):
    case = EXAMPLES[key]
    vocabulary = set(load_sat_vocabulary().terms(case.modality))
    assert set(case.sat_terms.values()) <= vocabulary
    assert {"liver", "spleen", "left kidney", "right kidney", "pancreas"} <= set(case.sat_terms.values())
    assert case.image.exists() and case.reference.is_file() and case.modality in ("ct", "mri")
