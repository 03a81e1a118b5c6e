"""DICOM series written and read back exactly; slice order from positions; DICOM-SEG round trip."""

from __future__ import annotations

import random

import nibabel as nib
import numpy as np
import pydicom
import pytest

from bundles.io.dicom_seg import read_dicom_seg
from bundles.io.dicom_series import write_dicom_series
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
