"""SAMed inference: axial slices of an oblique LPS volume through a stand-in network come back on the input
grid; body-only slices; the bundle's inference config end to end with a tiny SAMed; bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from bundles.engines.prompt_free import NoPrompts
from bundles.engines.segmentation_job import SegmentationJob
from bundles.inferers.axial_slices import AxialSlices
from bundles.samed.predictor import SlicePredictor
from bundles.samed.preprocessing import scale_ct
from tests.test_core_toy_family import _oblique_lps_phantom
from tests.test_samed_network import tiny_samed

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "samed_lora"
TINY = REPO / "tests" / "data" / "tiny_samed.json"


class BrightIsClassOne(nn.Module):
    """Stand-in SAMed (same interface): class 1 where the scaled CT is near 1 (> 250 HU), else background;
    counts the slices it sees."""

    img_size, num_classes = 96, 1

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(40.0))
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (3, 96, 96)
        self.seen += x.shape[0]
        foreground = self.scale * (x[:, :1] - (250 + 125) / 400)
        return torch.cat([-foreground, foreground], dim=1)


def test_axial_slices_are_the_display_orientation_and_round_trip_exactly():
    volume = np.random.default_rng(0).normal(size=(2, 5, 6, 7)).astype(np.float32)
    # a NIfTI stored as DICOM-converted CTs are (voxel axes towards L, P, S: Synapse's): SAMed transposes its
    # (H, W, D) array to (D, W, H), so a slice is the transposed plane: rows anterior -> posterior, columns R -> L
    lps = AxialSlices(volume, np.diag([-0.7, -0.7, 2.0, 1.0]))
    assert np.array_equal(lps.slices[1, :, :, 3].numpy(), volume[1, :, :, 3].T)
    assert lps.pixel_mm == pytest.approx((0.7, 0.7))
    affine = np.diag([-1.0, -1.0, 2.0, 1.0])[[2, 0, 1, 3]]  # voxel axes 0, 1, 2 run towards P, I, R
    slices = AxialSlices(volume, affine)
    assert slices.slices.shape == (2, 5, 7, 6)  # (C, P, L, S)
    assert np.array_equal(slices.slices[1, :, :, 0].numpy(), volume[1, :, -1, ::-1])  # the most inferior slice, R -> L
    assert slices.spacing == (1.0, 2.0, 1.0)  # voxel axis 2 (2 mm) runs along the columns
    assert np.array_equal(slices.voxels_to_slices(np.array([[4, 5, 6]])), [[4, 0, 0]])
    assert np.array_equal(slices.to_input_axes(slices.slices), volume)


def test_stand_in_network_on_oblique_lps_volume_writes_on_the_input_grid(tmp_path):
    image, mask = _oblique_lps_phantom(tmp_path)
    net = BrightIsClassOne()
    job = SegmentationJob(
        SlicePredictor(net, ["bright"], device="cpu", batch_size=4, progress=False), NoPrompts("stand-in"),
        {"image": str(image), "mask": str(mask), "legend": {"1": "bright"}, "id": "toy"}, tmp_path / "out", progress=False,
    )
    (row,) = job.run()
    written, source = nib.load(tmp_path / "out" / "toy" / "seg.nii.gz"), nib.load(image)
    assert written.shape == source.shape and np.allclose(written.affine, source.affine, atol=1e-5)
    assert row["class"] == "bright" and row["dice"] > 0.9
    assert net.seen == source.shape[2]  # every slice ran once


def test_skip_outside_body_runs_only_slices_with_tissue(tmp_path):
    image, _ = _oblique_lps_phantom(tmp_path)
    img = nib.load(image)
    data = np.asarray(img.dataobj).copy()
    data[..., :6] = -1000.0  # six slices of air
    net = BrightIsClassOne()
    predictor = SlicePredictor(net, ["bright"], device="cpu", skip_outside_body=True, progress=False)
    from bundles.io.readers import read_image

    nib.save(nib.Nifti1Image(data, img.affine), tmp_path / "air.nii.gz")
    volume, grid = read_image(tmp_path / "air.nii.gz")
    masks, names = predictor(volume, grid, None, None)
    assert net.seen == data.shape[2] - 6 and not masks[0][..., :6].any() and masks[0].any()


def test_scale_ct_is_samed_window():
    assert torch.allclose(scale_ct(torch.tensor([-1000.0, -125.0, 75.0, 275.0, 3000.0])), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


@pytest.fixture
def tiny_model_dir(tmp_path):
    torch.manual_seed(0)
    net = tiny_samed(num_classes=2, depth=2, global_attn_indexes=(1,))
    models = tmp_path / "models"
    models.mkdir()
    torch.save(net.state_dict(), models / "model.pt")
    return models


def _bundle(*args: str, cwd: Path = BUNDLE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", f"['configs/inference.json','{TINY}']", *args],
        cwd=cwd, capture_output=True, text=True,
    )


def test_bundle_inference_on_a_2d_image_and_a_volume(tmp_path, tiny_model_dir):
    image, _ = _oblique_lps_phantom(tmp_path)
    nib.save(nib.Nifti1Image(np.asarray(nib.load(image).dataobj)[..., 10], np.eye(4)), tmp_path / "slice.nii.gz")
    cases = {"cases": [{"image": str(image), "id": "vol"}, {"image": str(tmp_path / "slice.nii.gz"), "id": "slice"}]}
    done = _bundle("--input_dict", json.dumps(cases), "--output_dir", str(tmp_path / "out"), "--model_dir", str(tiny_model_dir), "--progress", "False")
    assert done.returncode == 0, done.stderr[-2000:]
    vol = nib.load(tmp_path / "out" / "vol" / "seg.nii.gz")
    assert vol.shape == nib.load(image).shape and np.allclose(vol.affine, nib.load(image).affine, atol=1e-5)
    assert nib.load(tmp_path / "out" / "slice" / "seg.nii.gz").shape[:2] == (48, 40)
    legend = json.loads((tmp_path / "out" / "vol" / "legend.json").read_text())
    assert legend["labels"] == {"1": "liver", "2": "spleen"}  # class_names of tests/data/tiny_samed.json


def test_bundle_refuses_prompts_and_4d_images_in_one_line(tmp_path, tiny_model_dir):
    image, _ = _oblique_lps_phantom(tmp_path)
    done = _bundle("--input_dict", json.dumps({"image": str(image), "prompts": ["liver"]}), "--output_dir", str(tmp_path / "a"),
                   "--model_dir", str(tiny_model_dir))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "SAMed takes no prompts" in done.stderr and "toy.nii.gz" in done.stderr
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 3), np.float32), np.eye(4)), tmp_path / "four_d.nii.gz")
    done = _bundle("--input_dict", json.dumps({"image": str(tmp_path / "four_d.nii.gz")}), "--output_dir", str(tmp_path / "b"),
                   "--model_dir", str(tiny_model_dir))
    assert done.returncode != 0 and "Traceback" not in done.stderr and "four_d.nii.gz" in done.stderr
    assert "frame" in done.stderr


def _disc(shape: tuple[int, int], pixel_mm: float, radius_mm: float = 60.0) -> torch.Tensor:
    r, a = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * pixel_mm for n in shape], indexing="ij")
    return torch.from_numpy((np.hypot(r, a) <= radius_mm).astype(np.float32))[None, None]


def test_slice_frame_at_fixed_spacing_gives_anatomy_the_same_pixel_size_and_inverts():
    from bundles.inferers.slice_frame import SliceFrame

    frame = SliceFrame(64, "spacing", spacing_mm=4.0)
    coarse = frame.to_network(_disc((80, 70), 3.0), (3.0, 3.0), mode="nearest")  # 240 x 210 mm, padded
    fine = frame.to_network(_disc((512, 512), 0.8), (0.8, 0.8))  # 410 mm: cropped to the central 256 mm
    assert coarse.shape == fine.shape == (1, 1, 64, 64)
    area = np.pi * (60 / 4) ** 2
    assert abs(float(coarse.sum()) - area) / area < 0.08 and abs(float((fine > 0.5).sum()) - area) / area < 0.08
    back = frame.to_slices(torch.cat([1 - coarse, coarse], 1), (80, 70), (3.0, 3.0)).argmax(1)[0]
    assert float((back.float() == _disc((80, 70), 3.0)[0, 0]).float().mean()) > 0.98
    whole = SliceFrame(64).to_network(_disc((80, 70), 3.0), (3.0, 3.0))  # SAMed: the whole slice, stretched
    assert whole.shape == (1, 1, 64, 64)
    longest = SliceFrame(64, "longest_side").to_network(_disc((80, 40), 3.0), (3.0, 3.0), mode="nearest")
    assert longest.shape == (1, 1, 64, 64) and not longest[..., 32:].any()  # aspect kept, padded at the end
    back = SliceFrame(64, "longest_side").to_slices(torch.cat([1 - longest, longest], 1), (80, 40), (3.0, 3.0)).argmax(1)[0]
    assert float((back.float() == _disc((80, 40), 3.0)[0, 0]).float().mean()) > 0.98


def test_python_api_writes_the_case_keeps_the_callers_excepthook_and_refuses_unknown_options(tmp_path, tiny_model_dir):
    from bundles import segment
    from bundles.errors import ConfigurationError

    (tiny_model_dir / "training.json").write_text(json.dumps({"config_files": [str(TINY)]}))
    image, _ = _oblique_lps_phantom(tmp_path)
    with pytest.raises(ConfigurationError, match="'batch_sise' is not an option of the samed_lora bundle; did you mean batch_size"):
        segment("samed_lora", image, tmp_path / "never", model_dir=tiny_model_dir, device="cpu", settings={"batch_sise": 2})
    assert not (tmp_path / "never").exists()
    hook = sys.excepthook
    out = segment("samed_lora", image, tmp_path / "out", model_dir=tiny_model_dir, device="cpu", settings={"batch_size": 2})
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert sys.excepthook is hook  # the bundle config's one-line error printer is for commands, not for library callers
    assert nib.load(folder / "seg.nii.gz").shape == nib.load(image).shape
