"""The family-neutral core carries a new family without touching SAT: a toy 2D prompt-free family.

The toy network is two Conv2d layers (no prompts) set by hand to mark bright voxels. Its glue uses only the
core: case parsing, the device/precision module (channels-last on a Conv2d network), MONAI's SliceInferer
over a volume resampled to a model grid, on-grid resampling back to the input grid, the per-case job,
writers and metrics. The phantom lies on an oblique LPS grid, so a mask that came back on the wrong grid
would miss its reference.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SliceInferer
from monai.transforms import Orientation, Spacing
from torch import nn

from bundles.engines.segmentation_job import SegmentationJob, prepare_cases
from bundles.errors import PromptError
from bundles.inferers.on_grid import MasksOnGrid
from bundles.io.cases import Case
from bundles.io.grid import ImageGrid
from bundles.precision import autocast, channels_last, prepare_for_inference, resolve_device

REPO = Path(__file__).resolve().parents[1]
#: Voxels brighter than this (HU) are "bright" for the toy network.
THRESHOLD_HU = 500.0


class TwoLayerNet(nn.Module):
    """(B, 1, H, W) HU/1000 -> (B, 1, H, W) logits, large where the pixel is above THRESHOLD_HU."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 1, 1)
        with torch.no_grad():
            self.conv1.weight.zero_()
            self.conv1.weight[:, 0, 1, 1] = 1.0  # identity on every channel
            self.conv1.bias.zero_()
            self.conv2.weight.fill_(40.0 / 4)
            self.conv2.bias.fill_(-40.0 * THRESHOLD_HU / 1000.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(x)))


class NoPrompts:
    """The toy family's prompt check: a prompt-free model refuses prompts, naming them."""

    def __call__(self, case: Case) -> None:
        if case.prompts:
            raise PromptError(f"{case.image}: this model takes no prompts, got {case.prompts!r}")

    def report_columns(self, name: str, prompts: None) -> dict:
        return {}


class ToySlicePredictor:
    """RAS at 1.5 x 1.5 x 2 mm -> SliceInferer over the last axis -> sigmoid -> back onto the input grid."""

    def __init__(self, network: nn.Module, device: str = "cpu", amp: bool = False):
        self.device = resolve_device(device)
        self.network = prepare_for_inference(network, self.device)
        self.amp = amp
        self.to_masks = MasksOnGrid(threshold=0.5)
        self.inferer = SliceInferer(roi_size=(32, 32), sw_batch_size=4, spatial_dim=2, overlap=0.25)

    def _model(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.amp):
            return self.network(channels_last(x.to(self.device))).float()

    @torch.inference_mode()
    def __call__(self, image: MetaTensor, grid: ImageGrid, case: Case, prompts: None) -> tuple[np.ndarray, list[str]]:
        model_grid = Spacing(pixdim=(1.5, 1.5, 2.0), mode="bilinear")(Orientation(axcodes="RAS")(image))
        logits = self.inferer(model_grid.as_tensor()[None] / 1000.0, self._model)
        return self.to_masks(torch.sigmoid(logits[0]), model_grid.affine, grid), ["bright"]


def _oblique_lps_phantom(folder: Path) -> tuple[Path, Path]:
    """A 48 x 40 x 20 volume, LPS, rotated 25 degrees about the z axis, anisotropic; a bright ellipsoid
    (1000 HU) in soft tissue (40 HU); its reference mask beside it."""
    shape = (48, 40, 20)
    angle = np.deg2rad(25)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ rotation @ np.diag([1.1, 0.9, 2.5])
    affine[:3, 3] = (30.0, -12.0, 80.0)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    centre = np.array([24, 20, 10])
    inside = (((idx - centre) / np.array([12, 9, 5])) ** 2).sum(-1) <= 1.0
    volume = np.where(inside, 1000.0, 40.0).astype(np.float32)
    image, mask = folder / "toy.nii.gz", folder / "toy_mask.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), image)
    nib.save(nib.Nifti1Image(inside.astype(np.uint8), affine), mask)
    return image, mask


def phantom_train_list(folder: Path) -> Path:
    """``folder/train.jsonl`` with one case: the oblique phantom, its mask labelled liver (CT)."""
    image, mask = _oblique_lps_phantom(folder)
    line = {"image": str(image), "mask": str(mask), "legend": {"1": "liver"}, "modality": "ct"}
    (folder / "train.jsonl").write_text(json.dumps(line) + "\n")
    return folder / "train.jsonl"


def test_a_2d_prompt_free_family_runs_on_the_core_alone(tmp_path):
    image, mask = _oblique_lps_phantom(tmp_path)
    job = SegmentationJob(
        ToySlicePredictor(TwoLayerNet()), NoPrompts(),
        {"image": str(image), "mask": str(mask), "legend": {"1": "bright"}, "id": "toy"},
        tmp_path / "out", progress=False,
    )
    rows = job.run()

    written = nib.load(tmp_path / "out" / "toy" / "seg.nii.gz")
    source = nib.load(image)
    assert written.shape == source.shape and np.allclose(written.affine, source.affine, atol=1e-5)
    assert json.loads((tmp_path / "out" / "toy" / "legend.json").read_text())["labels"] == {"1": "bright"}
    (row,) = rows
    assert row["class"] == "bright" and row["dice"] > 0.9
    assert (tmp_path / "out" / "metrics.csv").is_file()


def test_the_toy_family_refuses_prompts_before_any_model_work(tmp_path):
    image, _ = _oblique_lps_phantom(tmp_path)
    with pytest.raises(PromptError, match=r"takes no prompts, got \['liver'\]"):
        prepare_cases({"image": str(image), "prompts": ["liver"]}, NoPrompts())


def test_channels_last_handles_2d_and_3d_networks():
    """A Conv2d network (a ViT patch embedding) and a Conv3d one both take the fast layout."""
    mixed = nn.ModuleDict({"c2": nn.Conv2d(1, 2, 3), "c3": nn.Conv3d(1, 2, 3)})
    prepare_for_inference(mixed, torch.device("cpu"))
    assert mixed.c2.weight.is_contiguous(memory_format=torch.channels_last)
    assert mixed.c3.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert channels_last(torch.zeros(2, 3, 4, 5)).is_contiguous(memory_format=torch.channels_last)
    assert channels_last(torch.zeros(2, 3, 4, 5, 6)).is_contiguous(memory_format=torch.channels_last_3d)
    assert channels_last(torch.zeros(2, 3)).shape == (2, 3)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


#: The network packages: a family's (it has a glue package ``bundles/<f>/`` too) or a base families share
#: (``bundles/networks/sam/``: networks only). Found, not listed: a new family is checked by being there.
NETWORKS = sorted(p.name for p in (REPO / "bundles" / "networks").iterdir() if (p / "__init__.py").is_file())
FAMILY_GLUE = [n for n in NETWORKS if (REPO / "bundles" / n / "__init__.py").is_file()]


def _allowed_importers(name: str) -> tuple[str, ...]:
    """A family's code is used by its own glue and network only; a shared base by the families' packages."""
    if name in FAMILY_GLUE:
        return (f"bundles/{name}/", f"bundles/networks/{name}/")
    return (f"bundles/networks/{name}/", *(f"bundles/{f}/" for f in FAMILY_GLUE), *(f"bundles/networks/{f}/" for f in FAMILY_GLUE))


FAMILIES = {name: _allowed_importers(name) for name in NETWORKS}


def test_the_families_and_the_shared_base_are_found():
    assert {"sat", "sam_med3d", "samed", "sam_unet"} <= set(FAMILY_GLUE) and "sam" in set(NETWORKS) - set(FAMILY_GLUE)


@pytest.mark.parametrize("family", FAMILIES)
def test_no_module_outside_a_family_imports_it(family):
    """The core never imports a family, nor one family another: only a family's own packages use its code."""
    prefixes = (f"bundles.{family}", f"bundles.networks.{family}") if family in FAMILY_GLUE else (f"bundles.networks.{family}",)
    offenders = []
    for path in sorted((REPO / "bundles").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith(FAMILIES[family]):
            continue
        used = [m for m in _imports(path) if any(m == p or m.startswith(p + ".") for p in prefixes)]
        if used:
            offenders.append(f"{relative}: {sorted(used)}")
    assert offenders == []
