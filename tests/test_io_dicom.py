"""DICOM series written and read back exactly; slice order from positions; DICOM-SEG round trip."""

from __future__ import annotations

import random
import re

import nibabel as nib
import numpy as np
import pydicom
import pytest

import bundles
from bundles.data.phantom import make_ct_phantom
from bundles.io.dicom_seg import DEFAULT_SERIES_DESCRIPTION, read_dicom_seg
from bundles.io.dicom_series import dicom_series_case_id, write_dicom_series
from bundles.io.grid import ImageGrid
from bundles.io.readers import read_image
from bundles.io.writers import write_segmentation

SHAPE = (14, 11, 7)


def _lps_affine() -> np.ndarray:
    affine = np.diag([-0.7, -0.9, 2.5, 1.0])  # LPS voxel axes, anisotropic
    affine[:3, 3] = [101.25, -48.5, -312.0]
    return affine


@pytest.fixture()
def volume() -> np.ndarray:
    return np.random.default_rng(3).integers(-1024, 1800, SHAPE).astype(np.float32)


def test_series_reads_like_the_nifti_of_the_same_volume(tmp_path, volume):
    write_dicom_series(volume, _lps_affine(), tmp_path / "dicom")
    nib.save(nib.Nifti1Image(volume, _lps_affine()), tmp_path / "same.nii.gz")
    from_dicom, dicom_grid = read_image(tmp_path / "dicom")
    from_nifti, nifti_grid = read_image(tmp_path / "same.nii.gz")
    np.testing.assert_array_equal(from_dicom.numpy(), from_nifti.numpy())
    np.testing.assert_array_equal(from_dicom[0].numpy(), volume)
    np.testing.assert_allclose(dicom_grid.affine, nifti_grid.affine, atol=1e-4)
    np.testing.assert_allclose(dicom_grid.affine, _lps_affine(), atol=1e-4)
    assert dicom_grid.orientation == "LPS" and dicom_grid.shape == SHAPE
    assert [pydicom.dcmread(f).InstanceNumber for f in dicom_grid.dicom_files] == list(range(1, SHAPE[2] + 1))


def test_slice_order_comes_from_positions_not_instance_numbers(tmp_path, volume):
    files = write_dicom_series(volume, _lps_affine(), tmp_path / "dicom")
    numbers = list(range(1, len(files) + 1))
    random.Random(7).shuffle(numbers)
    for path, number in zip(files, numbers):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = number
        ds.save_as(tmp_path / "dicom" / f"CT{number:04d}.dcm")  # file names follow the shuffled numbers
        path.unlink()
    image, grid = read_image(tmp_path / "dicom")
    np.testing.assert_array_equal(image[0].numpy(), volume)
    np.testing.assert_allclose(grid.affine, _lps_affine(), atol=1e-4)
    z_of_files = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in grid.dicom_files]
    assert z_of_files == sorted(z_of_files) and len(z_of_files) == SHAPE[2]


def test_oblique_series_round_trip_and_left_handed_refused(tmp_path, volume):
    angle = np.deg2rad(20.0)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    oblique = np.eye(4)
    oblique[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ rotation @ np.diag([0.7, 0.9, 2.5])
    oblique[:3, 3] = [5.0, 6.0, 7.0]
    write_dicom_series(volume, oblique, tmp_path / "oblique")
    image, grid = read_image(tmp_path / "oblique")
    np.testing.assert_array_equal(image[0].numpy(), volume)
    np.testing.assert_allclose(grid.affine, oblique, atol=1e-4)
    left_handed = _lps_affine() @ np.diag([1.0, 1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="left-handed"):
        write_dicom_series(volume, left_handed, tmp_path / "lh")


def test_dicom_seg_round_trip_and_world_placement(tmp_path, volume):
    write_dicom_series(volume, _lps_affine(), tmp_path / "dicom")
    _, grid = read_image(tmp_path / "dicom")
    masks = np.zeros((2, *SHAPE), bool)
    masks[0, 2:9, 3:7, 1:5] = True
    masks[1, 10, 1, 6] = True  # one voxel in a corner slice
    paths = write_segmentation(masks, ["liver", "lesion"], grid, tmp_path / "out")
    assert paths["dicom_seg"].name == "seg.dcm"
    seg = pydicom.dcmread(paths["dicom_seg"])
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    source_series = pydicom.dcmread(grid.dicom_files[0]).SeriesInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source_series
    back, names = read_dicom_seg(paths["dicom_seg"], grid)
    assert names == ["liver", "lesion"]
    np.testing.assert_array_equal(back, masks)
    # The same SEG read onto a grid whose y axis runs the other way: voxels follow the world, not the index.
    flipped_affine = grid.affine.copy()
    flipped_affine[:3, 1] *= -1
    flipped_affine[:3, 3] = grid.affine[:3, :3] @ np.array([0, SHAPE[1] - 1, 0]) + grid.affine[:3, 3]
    flipped, _ = read_dicom_seg(paths["dicom_seg"], ImageGrid(SHAPE, flipped_affine, "flipped"))
    np.testing.assert_array_equal(flipped, masks[:, :, ::-1, :])
    assert write_segmentation(masks, ["liver", "lesion"], grid, tmp_path / "no_seg", dicom_seg=False).get("dicom_seg") is None


TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                       "ReferringPhysicianName", "AccessionNumber", "StudyID")


def _segment_codes(seg: pydicom.Dataset) -> dict[str, tuple[str, str | None]]:
    """SegmentLabel -> (SegmentedPropertyType code value, laterality modifier code value or None)."""
    out = {}
    for item in seg.SegmentSequence:
        code = item.SegmentedPropertyTypeCodeSequence[0]
        modifier = code.get("SegmentedPropertyTypeModifierCodeSequence")
        out[str(item.SegmentLabel)] = (str(code.CodeValue), str(modifier[0].CodeValue) if modifier else None)
    return out


def test_anonymised_phantom_series_gets_a_coded_seg(tmp_path):
    phantom = make_ct_phantom(0, shape=(32, 28, 16), spacing=(2.0, 2.0, 4.0))
    files = write_dicom_series(phantom.image, phantom.affine, tmp_path / "dicom")
    for path in files:  # what de-identification tools leave: no patient/study type-2 attributes at all
        ds = pydicom.dcmread(path)
        for keyword in TYPE2_PATIENT_STUDY:
            delattr(ds, keyword)
        ds.save_as(path)
    assert all(k not in pydicom.dcmread(files[0]) for k in TYPE2_PATIENT_STUDY)
    _, grid = read_image(tmp_path / "dicom")
    np.testing.assert_allclose(grid.affine, phantom.affine, atol=1e-4)
    names = [phantom.legend[k] for k in sorted(phantom.legend)]
    masks = np.stack([phantom.labels == k for k in sorted(phantom.legend)])
    assert masks.reshape(len(names), -1).any(axis=1).all()
    paths = write_segmentation(masks, names, grid, tmp_path / "out", algorithm_name="SAT-Nano", algorithm_version="sha256:0123abcd")
    assert "dicom_seg_error" not in paths
    seg = pydicom.dcmread(paths["dicom_seg"])
    for keyword in TYPE2_PATIENT_STUDY:
        assert keyword in seg and str(seg[keyword].value or "") == "", keyword
    assert seg.StudyInstanceUID == pydicom.dcmread(files[0]).StudyInstanceUID
    back, labels = read_dicom_seg(paths["dicom_seg"], grid)
    assert labels == names
    np.testing.assert_array_equal(back, masks)
    # SNOMED CT anatomy codes (DICOM PS3.16 CID 7151), laterality as a modifier; labels stay the prompt names
    assert _segment_codes(seg) == {
        "liver": ("10200004", None),
        "spleen": ("78961009", None),
        "left kidney": ("64033007", "7771000"),
        "right kidney": ("64033007", "24028007"),
        "aorta": ("15825003", None),
        "stomach": ("69695003", None),
        "pancreas": ("15776009", None),
        "gallbladder": ("28231008", None),
    }
    assert {str(i.SegmentedPropertyCategoryCodeSequence[0].CodeValue) for i in seg.SegmentSequence} == {"123037004"}
    assert seg.SeriesDescription == DEFAULT_SERIES_DESCRIPTION
    algorithms = [item.SegmentationAlgorithmIdentificationSequence[0] for item in seg.SegmentSequence]
    assert {(a.AlgorithmName, a.AlgorithmVersion) for a in algorithms} == {("SAT-Nano", "sha256:0123abcd")}


def test_seg_codes_fall_back_and_description_is_the_callers(tmp_path, volume):
    write_dicom_series(volume, _lps_affine(), tmp_path / "dicom")
    _, grid = read_image(tmp_path / "dicom")
    names = ["Inferior Vena Cava", "liver tumor", "left lung upper lobe", "left heart ventricle", "ct_urinary bladder"]
    masks = np.zeros((len(names), *SHAPE), bool)
    for q in range(len(names)):
        masks[q, q : q + 3, 1:4, q % SHAPE[2]] = True
    paths = write_segmentation(masks, names, grid, tmp_path / "out", series_description="SAT-Pro abdomen run 7",
                               algorithm_name="SAT-Pro")
    seg = pydicom.dcmread(paths["dicom_seg"])
    assert _segment_codes(seg) == {
        "Inferior Vena Cava": ("64131007", None),
        "liver tumor": ("91723000", None),  # a lesion, not anatomy: the generic code, never a wrong one
        "left lung upper lobe": ("91723000", None),
        "left heart ventricle": ("87878005", None),  # the side is part of the structure: no modifier
        "ct_urinary bladder": ("89837001", None),
    }
    assert seg.SeriesDescription == "SAT-Pro abdomen run 7"
    version = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion
    assert seg.SegmentSequence[0].SegmentAlgorithmName == "SAT-Pro" and version == bundles.__version__
    np.testing.assert_array_equal(read_dicom_seg(paths["dicom_seg"], grid)[0], masks)


def test_case_id_from_headers_is_readable_safe_and_unique(tmp_path, volume, monkeypatch):
    first = write_dicom_series(volume, _lps_affine(), tmp_path / "a" / "dicom", patient_id="P 001/ä",
                               series_description="Abd CT (venous)", seed="one")
    second = write_dicom_series(volume, _lps_affine(), tmp_path / "b" / "dicom", patient_id="P 001/ä",
                                series_description="Abd CT (venous)", seed="two")
    reads = []
    real_read = pydicom.dcmread
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: reads.append(k) or real_read(*a, **k))
    ids = [dicom_series_case_id(tmp_path / side / "dicom") for side in ("a", "b")]
    assert reads == [{"stop_before_pixels": True}] * 2  # one header per folder, no pixels
    monkeypatch.undo()
    uids = [str(pydicom.dcmread(files[0]).SeriesInstanceUID) for files in (first, second)]
    assert ids[0] != ids[1]
    for case_id, uid in zip(ids, uids):
        assert re.fullmatch(r"[A-Za-z0-9._-]+", case_id)
        assert case_id == f"P_001_Abd_CT_venous_{uid[-8:].strip('.')}"
    for path in first:  # anonymised: no PatientID, no SeriesDescription
        ds = pydicom.dcmread(path)
        del ds.PatientID, ds.SeriesDescription
        ds.save_as(path)
    assert dicom_series_case_id(tmp_path / "a" / "dicom") == uids[0][-8:].strip(".")
    for path in [*first, *second]:  # not even a SeriesInstanceUID: still never the folder name "dicom"
        ds = pydicom.dcmread(path)
        del ds.SeriesInstanceUID
        ds.save_as(path)
    bare = [dicom_series_case_id(tmp_path / side / "dicom") for side in ("a", "b")]
    assert bare[0] != bare[1] and "dicom" not in bare
    assert all(re.fullmatch(r"(P_001_Abd_CT_venous_)?[0-9a-f]{8}", b) for b in bare)
