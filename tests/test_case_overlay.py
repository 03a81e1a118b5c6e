"""Overlay of a case folder written by the bundle (``save_case_overlay`` and ``python -m tools.overlay``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from matplotlib.image import imread

from bundles.data.phantom import make_ct_phantom
from bundles.errors import BundleInputError, ConfigurationError
from bundles.io.dicom_series import write_dicom_series
from bundles.io.readers import read_image
from bundles.io.writers import write_segmentation
from bundles.visualize.case_overlay import load_case_masks, save_case_overlay
from bundles.visualize.overlay import DEFAULT_CT_WINDOW, display_window, save_overlay_figure

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMES = ["liver", "spleen", "gallbladder"]


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    """A small phantom scan (NIfTI), its reference label map, and a case folder whose prediction is the
    reference liver and spleen, with an empty gallbladder (a miss)."""
    root = tmp_path_factory.mktemp("case")
    phantom = make_ct_phantom(0, (48, 40, 16), (8.0, 8.0, 16.0))
    image_path, labels_path = root / "image.nii.gz", root / "labels.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image, phantom.affine), image_path)
    nib.save(nib.Nifti1Image(phantom.labels, phantom.affine), labels_path)
    value = {name: v for v, name in phantom.legend.items()}
    ref = np.stack([phantom.labels == value[n] for n in NAMES])
    pred = ref.copy()
    pred[2] = False
    image, grid = read_image(image_path)
    case_dir = root / "out" / "case_1"
    write_segmentation(pred, NAMES, grid, case_dir)
    return {"root": root, "image": image_path, "labels": labels_path, "legend": phantom.legend, "phantom": phantom,
            "volume": np.asarray(image[0]), "grid": grid, "pred": pred, "ref": ref, "case_dir": case_dir}


def _pixels(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path)[..., :3]


def test_load_case_masks_reads_the_written_files(case):
    loaded = load_case_masks(case["case_dir"])
    assert loaded.names == NAMES
    np.testing.assert_array_equal(loaded.masks, case["pred"])
    np.testing.assert_allclose(loaded.affine, case["grid"].affine, atol=1e-4)


def test_case_overlay_is_the_figure_of_the_written_masks(case, tmp_path):
    written = save_case_overlay(case["image"], case["case_dir"])
    assert written == case["case_dir"] / "overlay.png"
    # The empty gallbladder is left out; default window (CT) and title name the case.
    direct = save_overlay_figure(case["volume"], case["grid"], case["pred"][:2], None, NAMES[:2], tmp_path / "direct.png",
                                 window=DEFAULT_CT_WINDOW, title="case_1: prediction (solid)")
    drawn = _pixels(written)
    np.testing.assert_array_equal(drawn, _pixels(direct))
    blue = (drawn[..., 2] > 0.5) & (drawn[..., 0] < 0.4) & (drawn[..., 1] < 0.6)  # liver contour, colour C0
    assert blue.sum() > 50
    # Without any mask the figure differs where the contours were.
    empty_case = tmp_path / "empty_case"
    write_segmentation(np.zeros_like(case["pred"]), NAMES, case["grid"], empty_case)
    blank = _pixels(save_case_overlay(case["image"], empty_case, tmp_path / "blank.png", title="case_1: prediction (solid)"))
    assert blank.shape == drawn.shape and np.any(np.abs(drawn - blank) > 0.2, axis=-1).sum() > 50


def test_reference_contours_with_a_legend_file(case, tmp_path):
    legend_file = tmp_path / "legend.json"
    legend_file.write_text(json.dumps({str(v): n for v, n in case["legend"].items()}))
    written = save_case_overlay(case["image"], case["case_dir"], tmp_path / "with_ref.png", reference=case["labels"],
                                reference_legend=legend_file)
    # The gallbladder is back: predicted empty, but its reference has a (dashed) contour to draw.
    direct = save_overlay_figure(case["volume"], case["grid"], case["pred"], case["ref"], NAMES, tmp_path / "direct.png",
                                 title="case_1: prediction (solid) vs reference (dashed)")
    np.testing.assert_array_equal(_pixels(written), _pixels(direct))
    without = _pixels(save_case_overlay(case["image"], case["case_dir"], tmp_path / "no_ref.png",
                                        title="case_1: prediction (solid) vs reference (dashed)"))
    assert not np.array_equal(_pixels(written), without)


def test_reference_numbered_like_the_segmentation_by_default(case, tmp_path):
    # seg.nii.gz itself as the reference: values 1..3 are the case's own legend labels.
    written = save_case_overlay(case["image"], case["case_dir"], tmp_path / "self.png",
                                reference=case["case_dir"] / "seg.nii.gz", title="t")
    direct = save_overlay_figure(case["volume"], case["grid"], case["pred"][:2], case["pred"][:2], NAMES[:2],
                                 tmp_path / "direct.png", title="t")
    np.testing.assert_array_equal(_pixels(written), _pixels(direct))


def test_dicom_folder_input(case, tmp_path):
    phantom = case["phantom"]
    write_dicom_series(phantom.image, phantom.affine, tmp_path / "dicom")
    _, grid = read_image(tmp_path / "dicom")
    write_segmentation(case["pred"], NAMES, grid, tmp_path / "out" / "dicom_case")
    written = save_case_overlay(tmp_path / "dicom", tmp_path / "out" / "dicom_case", tmp_path / "dicom.png", title="t")
    # Same voxels and (to float precision) the same geometry as the NIfTI case: the same picture.
    nifti = save_case_overlay(case["image"], case["case_dir"], tmp_path / "nifti.png", title="t")
    np.testing.assert_array_equal(_pixels(written), _pixels(nifti))


def test_wrong_image_or_folder_is_refused(case, tmp_path):
    other = tmp_path / "other.nii.gz"
    nib.save(nib.Nifti1Image(case["phantom"].image[:, :, :12], case["phantom"].affine), other)
    with pytest.raises(BundleInputError, match="not on the grid of .*other.nii.gz.*pass the image this case"):
        save_case_overlay(other, case["case_dir"], tmp_path / "x.png")
    with pytest.raises(BundleInputError, match="no legend.json"):
        save_case_overlay(case["image"], tmp_path, tmp_path / "x.png")
    with pytest.raises(ConfigurationError, match="display window"):
        save_case_overlay(case["image"], case["case_dir"], tmp_path / "x.png", window="bone")
    assert not (tmp_path / "x.png").exists()


def test_display_window_choices():
    assert display_window("ct") == DEFAULT_CT_WINDOW
    assert display_window("percentile") is None and display_window(None) is None
    assert display_window([-1000, 400]) == (-1000.0, 400.0)
    with pytest.raises(ConfigurationError, match="low end"):
        display_window((400, -1000))
    with pytest.raises(ConfigurationError):
        display_window((1, 2, 3))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.overlay", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)


def test_command_line(case, tmp_path):
    output = tmp_path / "cli.png"
    done = _cli("--image", str(case["image"]), "--case_dir", str(case["case_dir"]), "--output", str(output),
                "--window=[-1000,400]", "--title", "t", "--reference", str(case["labels"]),
                '--reference_legend={1: "liver", 2: "spleen", 8: "gallbladder"}')
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {output}"
    direct = save_overlay_figure(case["volume"], case["grid"], case["pred"], case["ref"], NAMES, tmp_path / "direct.png",
                                 window=(-1000.0, 400.0), title="t")
    np.testing.assert_array_equal(_pixels(output), _pixels(direct))
    failed = _cli("--image", str(case["image"]), "--case_dir", str(tmp_path))
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("error: BundleInputError:") and "no legend.json" in failed.stderr
