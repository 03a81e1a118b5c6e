"""Every bad input gives a BundleInputError naming the file, and nothing is written afterwards."""

from __future__ import annotations

import gzip
import json
import logging

import nibabel as nib
import numpy as np
import pytest

from bundles.errors import BundleInputError, ConfigurationError
from bundles.io import writers
from bundles.io.dicom_series import dicom_series_case_id, write_dicom_series
from bundles.io.readers import read_image
from bundles.io.writers import write_segmentation
from bundles.transforms.intensity_checks import check_ct_intensities

AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])


def _ct(shape=(12, 10, 6), seed=0):
    return np.random.default_rng(seed).integers(-1000, 1000, shape).astype(np.int16)


def _save(tmp_path, data, affine=AFFINE, name="image.nii.gz"):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _segment_ct(path, out_dir, **read_options):
    """The flow every bundle runs: read, check HU, predict, write."""
    image, grid = read_image(path, **read_options)
    check_ct_intensities(image, path)
    masks = (image[0].numpy() > 0)[None]
    return write_segmentation(masks, ["bone"], grid, out_dir)


def _assert_refused(path, tmp_path, expected_text, **read_options):
    out_dir = tmp_path / "out"
    with pytest.raises(BundleInputError) as info:
        _segment_ct(path, out_dir, **read_options)
    assert str(path) in str(info.value)
    assert expected_text in str(info.value)
    assert not out_dir.exists() or not any(out_dir.rglob("*"))
    return info.value


def test_missing_file(tmp_path):
    _assert_refused(tmp_path / "nope.nii.gz", tmp_path, "no such file")


def test_truncated_nifti(tmp_path):
    path = _save(tmp_path, _ct((40, 40, 20)))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    error = _assert_refused(path, tmp_path, "cannot be read as NIfTI")
    assert error.__cause__ is not None


def test_text_file_named_nifti(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_text("this is not an image\n")
    _assert_refused(path, tmp_path, "cannot be read as NIfTI")


def test_gzip_of_text_named_nifti(tmp_path):
    path = tmp_path / "fake.nii.gz"
    path.write_bytes(gzip.compress(b"hello " * 100))
    _assert_refused(path, tmp_path, "cannot be read")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "slice.dcm"
    path.write_bytes(b"\0" * 200)
    _assert_refused(path, tmp_path, "pass the folder")


def test_2d_image(tmp_path):
    path = _save(tmp_path, _ct((12, 10)))
    _assert_refused(path, tmp_path, "2 dimension(s)")


def test_4d_needs_frame_and_frame_selects_it(tmp_path):
    data = np.stack([_ct(seed=s) for s in range(3)], axis=-1)
    path = _save(tmp_path, data)
    error = _assert_refused(path, tmp_path, "`frame` option")
    assert "(12, 10, 6, 3)" in str(error)
    _assert_refused(path, tmp_path, "out of range", frame=3)
    image, grid = read_image(path, frame=1)
    assert grid.shape == (12, 10, 6)
    np.testing.assert_array_equal(image[0].numpy(), data[..., 1])
    assert (tmp_path / "ok" / "seg.nii.gz").exists() is False
    paths = _segment_ct(path, tmp_path / "ok", frame=1)
    written = nib.load(paths["seg"])
    assert written.shape == (12, 10, 6)
    assert written.header["pixdim"].tobytes() == nib.load(path).header["pixdim"].tobytes()  # pixdim[4] untouched


def test_inconsistent_header_geometry(tmp_path):
    image = nib.Nifti1Image(_ct(), AFFINE)
    image.header.set_zooms((1.0, 1.0, 1.0))  # pixdim (and so the qform) now disagree with the 0.8 mm sform
    path = tmp_path / "inconsistent.nii.gz"
    nib.save(image, path)
    _assert_refused(path, tmp_path, "inconsistent NIfTI geometry")


@pytest.mark.parametrize("shape", [(12, 10, 6, 1), (12, 10, 6, 1, 1)])
def test_singleton_trailing_axes_are_3d(tmp_path, shape):
    data = _ct().reshape(shape)
    image, grid = read_image(_save(tmp_path, data))
    assert grid.shape == (12, 10, 6) and image.shape == (1, 12, 10, 6)
    np.testing.assert_array_equal(image[0].numpy(), data.reshape(12, 10, 6))


def test_nan_voxels_are_counted(tmp_path):
    data = _ct().astype(np.float32)
    data[0, 0, :3] = np.nan
    data[1, 1, 1] = np.inf
    _assert_refused(_save(tmp_path, data), tmp_path, "4 NaN/Inf voxel(s)")


def test_constant_image(tmp_path):
    _assert_refused(_save(tmp_path, np.full((12, 10, 6), 40, np.int16)), tmp_path, "constant")


def test_empty_image(tmp_path):
    _assert_refused(_save(tmp_path, np.zeros((12, 0, 6), np.int16)), tmp_path, "empty")


def test_zero_spacing(tmp_path):
    image = nib.Nifti1Image(_ct(), None)
    image.header.set_sform(np.diag([0.8, 0.0, 2.0, 1.0]), code=2)  # the sform (used by readers) has a zero axis
    path = tmp_path / "zero.nii.gz"
    nib.save(image, path)
    assert nib.load(path).affine[1, 1] == 0.0
    _assert_refused(path, tmp_path, "zero axis")


@pytest.mark.parametrize("spacing", [0.001, 120.0])
def test_absurd_spacing(tmp_path, spacing):
    _assert_refused(_save(tmp_path, _ct(), np.diag([0.8, 0.8, spacing, 1.0])), tmp_path, "implausible voxel spacing")


def test_folder_without_dicom(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "README.txt").write_text("no images here")
    _assert_refused(folder, tmp_path, "no DICOM image")


def test_folder_with_two_series_names_them(tmp_path):
    folder = tmp_path / "series"
    write_dicom_series(_ct(seed=1), np.diag([-0.8, -0.8, 2.0, 1.0]), folder / "a", seed="first")
    write_dicom_series(_ct(seed=2), np.diag([-0.8, -0.8, 2.0, 1.0]), folder / "b", seed="second")
    for sub in ("a", "b"):
        for f in (folder / sub).iterdir():
            f.rename(folder / f"{sub}_{f.name}")
        (folder / sub).rmdir()
    uids = {__import__("pydicom").dcmread(f, stop_before_pixels=True).SeriesInstanceUID for f in folder.iterdir()}
    error = _assert_refused(folder, tmp_path, "2 DICOM series")
    assert all(uid in str(error) for uid in uids)


def test_ct_scaled_to_unit_range(tmp_path):
    data = np.random.default_rng(0).random((12, 10, 6)).astype(np.float32)
    _assert_refused(_save(tmp_path, data), tmp_path, "looks scaled to [0,1] or 0..255, not HU")


def test_ct_in_hu_passes_the_check():
    check_ct_intensities(np.array([-1000.0, 40.0, 1200.0]), "ok.nii.gz")


def test_writer_refuses_bad_arguments_before_writing(tmp_path):
    _, grid = read_image(_save(tmp_path, _ct()))
    out = tmp_path / "out"
    good = np.zeros((1, 12, 10, 6), bool)
    with pytest.raises(ValueError, match="shape"):
        write_segmentation(np.zeros((1, 12, 10, 5), bool), ["a"], grid, out)
    with pytest.raises(ValueError, match="names"):
        write_segmentation(good, ["a", "b"], grid, out)
    with pytest.raises(ValueError, match="distinct"):
        write_segmentation(np.zeros((2, 12, 10, 6), bool), ["left kidney", "Left_Kidney"], grid, out)
    with pytest.raises(ValueError, match="boolean"):
        write_segmentation(good.astype(np.float32) + 0.5, ["a"], grid, out)
    with pytest.raises(ConfigurationError, match="not a DICOM series"):
        write_segmentation(good, ["a"], grid, out, dicom_seg=True)
    assert not out.exists()


def test_series_in_a_subfolder_is_named(tmp_path):
    upload = tmp_path / "upload"
    series = upload / "patient" / "study 1" / "CT abdomen"
    write_dicom_series(_ct(seed=3), np.diag([-0.8, -0.8, 2.0, 1.0]), series)
    (upload / "patient" / "DICOMDIR.txt").write_text("index, not an image")
    error = _assert_refused(upload, tmp_path, f"the series is in {series}; pass that folder")
    assert error.path == str(upload)
    with pytest.raises(BundleInputError, match="pass that folder"):
        dicom_series_case_id(upload)
    image, grid = read_image(series)  # the named folder is the one that works
    assert grid.shape == (12, 10, 6) and len(grid.dicom_files) == 6
    write_dicom_series(_ct(seed=4), np.diag([-0.8, -0.8, 2.0, 1.0]), upload / "other", seed="other")
    error = _assert_refused(upload, tmp_path, "2 of its sub-folders do")
    assert str(series) in str(error) and str(upload / "other") in str(error) and "the series is in" not in str(error)


def _dicom_grid(tmp_path):
    files = write_dicom_series(_ct(seed=5), np.diag([-0.8, -0.8, 2.0, 1.0]), tmp_path / "dicom")
    return files, read_image(tmp_path / "dicom")[1]


def _assert_nifti_outputs_and_reported(paths, out, expected, caplog):
    assert (out / "seg.nii.gz").is_file() and (out / "masks" / "bone.nii.gz").is_file()
    assert nib.load(out / "seg.nii.gz").shape == (12, 10, 6)
    assert not (out / "seg.dcm").exists() and "dicom_seg" not in paths
    assert expected in paths["dicom_seg_error"] and "\n" not in paths["dicom_seg_error"]
    legend = json.loads((out / "legend.json").read_text())
    assert legend["labels"] == {"1": "bone"} and legend["dicom_seg_error"] == paths["dicom_seg_error"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "bundles.io.writers"]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert str(out) in line and expected in line and "\n" not in line


def test_dicom_seg_failure_keeps_nifti_outputs(tmp_path, monkeypatch, caplog):
    _, grid = _dicom_grid(tmp_path)
    masks = np.zeros((1, 12, 10, 6), bool)
    masks[0, 2:5, 3:6, 1:4] = True

    def broken(*args, **kwargs):
        raise RuntimeError("highdicom exploded\non two lines")

    monkeypatch.setattr(writers, "build_dicom_seg", broken)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        paths = write_segmentation(masks, ["bone"], grid, out)
    _assert_nifti_outputs_and_reported(paths, out, "RuntimeError: highdicom exploded on two lines", caplog)
    np.testing.assert_array_equal(np.asarray(nib.load(paths["mask:bone"]).dataobj).astype(bool), masks[0])


def test_vanished_source_slice_is_reported_not_raised(tmp_path, caplog):
    files, grid = _dicom_grid(tmp_path)
    files[3].unlink()  # the series changed between reading and writing
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        paths = write_segmentation(np.ones((1, 12, 10, 6), bool), ["bone"], grid, out)
    _assert_nifti_outputs_and_reported(paths, out, f"BundleInputError: {files[3]}: source DICOM slice cannot be read", caplog)
