"""``medseg``, the console command of every bundle: ``medseg segment --bundle <b>`` writes what
``bundles.segment`` computes, for all discovered bundles (tiny models of ``tests/live_server.py``, every mask logit
positive, on the oblique LPS phantom); mistakes cost well under a torch import and name the flag to fix."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

import bundles
from bundles.bundle_configs import BUNDLES
from bundles.console.main import main
from bundles.io.writers import label_map
from tests.live_server import REPO, tiny_model_dirs, tiny_sat_pro_model
from tests.test_core_toy_family import _oblique_lps_phantom

CLICK = [24, 20, 10]  #: the phantom's bright ellipsoid centre (voxel indices)
BOX = [14, 12, 6, 34, 28, 12]
#: bundle -> (medseg prompt flags, the same prompts as bundles.segment takes them)
CASES = {
    "sat_nano": (["--prompts", "liver", "spleen"], {"prompts": ["liver", "spleen"], "modality": "ct"}),
    "sat_pro": (["--prompts", "liver"], {"prompts": ["liver"], "modality": "ct"}),
    "sam_med3d": (["--name", "blob", "--clicks", "24,20,10"], {"objects": [{"name": "blob", "points": [CLICK], "point_labels": [1]}]}),
    "samed_lora": ([], {}),
    "sam_unet": (["--name", "blob", "--boxes", ",".join(map(str, BOX))], {"objects": [{"name": "blob", "box": BOX}]}),
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_sat_model):
    root = tmp_path_factory.mktemp("medseg_console")
    image, _ = _oblique_lps_phantom(root)
    models = tiny_model_dirs(root, tiny_sat_model)
    models["sat_pro"] = str(tiny_sat_pro_model(root, tiny_sat_model))
    return {"image": image, "models": models}


def test_every_discovered_bundle_has_a_case_here():
    assert set(CASES) == set(BUNDLES)


@pytest.mark.parametrize("bundle", sorted(CASES))
def test_medseg_segment_writes_what_bundles_segment_computes(setup, bundle, tmp_path):
    flags, prompts = CASES[bundle]
    out = tmp_path / "out"
    assert main(["segment", str(setup["image"]), "-o", str(out), "--bundle", bundle, "--model", setup["models"][bundle],
                 "--device", "cpu", *flags]) == 0
    masks, names, _ = bundles.segment(bundle, setup["image"], model_dir=setup["models"][bundle], device="cpu", **prompts)
    (written,) = list(out.glob("*/seg.nii.gz"))
    assert masks.any(), "every logit positive: the answer has voxels"
    assert np.array_equal(np.asarray(nib.load(written).dataobj), label_map(masks))
    for name in names:
        assert (written.parent / "masks" / f"{name}.nii.gz").is_file()


def test_world_clicks_are_the_voxel_clicks_in_millimetres(setup, tmp_path):
    affine = nib.load(setup["image"]).affine
    world = (affine @ np.array([*CLICK, 1.0]))[:3]
    runs = {}
    for label, flags in {"voxel": ["--clicks", "24,20,10"], "world": ["--world", "--clicks", ",".join(f"{v:.6f}" for v in world)]}.items():
        out = tmp_path / label
        assert main(["segment", str(setup["image"]), "-o", str(out), "--bundle", "sam_med3d", "--model", setup["models"]["sam_med3d"],
                     "--device", "cpu", *flags]) == 0
        (written,) = list(out.glob("*/seg.nii.gz"))
        runs[label] = np.asarray(nib.load(written).dataobj)
    assert runs["voxel"].any() and np.array_equal(runs["voxel"], runs["world"])


def _medseg_quick(tmp_path, *args: str) -> tuple[list[str], str]:
    """``medseg`` in a fresh process; returns [torch imported?, exit status] and stderr."""
    code = "import sys; from bundles.console.main import main; rc = main(sys.argv[1:]); print('torch' in sys.modules, rc)"
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    return result.stdout.split()[-2:], result.stderr.strip()


@pytest.mark.parametrize("args, message", [
    (["--bundle", "sam_med3d", "--prompts", "liver"], "the sam_med3d bundle takes --clicks / --objects; --prompts is not one of its options"),
    (["--bundle", "samed_lora", "--boxes", "1,2,3,4,5,6"], "the samed_lora bundle takes no prompts"),
    (["--bundle", "sam_unet", "--boxes", "1,2,3"], "--boxes '1,2,3': expected 6 comma-separated numbers"),
    (["--bundle", "sam_unet"], "the sam_unet bundle needs prompts: --boxes / --clicks / --objects"),
    (["--bundle", "sat_nano"], "the sat_nano bundle needs --prompts"),
    (["--bundle", "sat_nano", "--prompts", "livr"], "'livr'"),
    (["--bundle", "samed_lora", "--largest-component"], "--largest-component: the samed_lora bundle has no such setting"),
    (["--bundle", "sam_med3d", "--clicks", "1,2,3", "--model", "no/such/folder"], "no/such/folder: no such model folder (--model)"),
    (["--bundle", "sam_med3d", "--clicks", "1,2,3", "--model", "."], "point --model to the folder"),
    (["--bundle", "nope"], "unknown bundle 'nope'"),
    (["--bundle", "samed_lora", "--dicom-seg"], "--dicom-seg needs a DICOM series folder"),
    (["--bundle", "sat_nano", "--prompts", "liver", "--set", "tilng=fit"], "--set tilng: not a setting of the sat_nano bundle"),
    (["--bundle", "sat_nano", "--prompts", "liver", "--set", "tiling"], "--set 'tiling': expected KEY=VALUE"),
])
def test_mistakes_are_one_line_before_torch_loads(setup, tmp_path, args, message):
    status, stderr = _medseg_quick(tmp_path, "segment", str(setup["image"]), "-o", str(tmp_path / "out"), *args)
    assert status == ["False", "1"], stderr
    assert len(stderr.splitlines()) == 1 and message in stderr
    assert not (tmp_path / "out").exists()


def test_an_image_that_is_no_volume_is_refused_before_torch_loads(setup, tmp_path):
    png = tmp_path / "slice.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    status, stderr = _medseg_quick(tmp_path, "segment", str(png), "-o", str(tmp_path / "out"), "--bundle", "samed_lora",
                                   "--model", setup["models"]["samed_lora"])
    assert status == ["False", "1"] and f"{png}: unsupported file type" in stderr
    assert not (tmp_path / "out").exists()


def test_medseg_bundles_and_help_cover_every_bundle(capsys):
    assert main(["bundles"]) == 0
    listing = capsys.readouterr().out
    for bundle in BUNDLES:
        assert f"\n{bundle}\n" in f"\n{listing}" and f"--bundle {bundle}" in listing
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    help_text = capsys.readouterr().out
    assert all(f"--bundle {bundle}" in help_text for bundle in BUNDLES)


def test_library_chatter_only_with_verbose(setup, tmp_path):
    def run(*extra: str) -> str:
        command = [sys.executable, "-m", "bundles.console.main", "segment", str(setup["image"]), "-o", str(tmp_path / "out"),
                   "--bundle", "samed_lora", "--model", setup["models"]["samed_lora"], "--device", "cpu", *extra]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout + result.stderr

    quiet, verbose = run(), run("--verbose")
    assert "input summary" not in quiet and "parsing config_file" not in quiet and "outputs:" in quiet
    assert "input summary" in verbose


@pytest.mark.parametrize("args, option", [(["convert", "sam_med3d", "--help"], "CHECKPOINT"), (["serve", "--help"], "--studies")])
def test_convert_and_serve_are_the_declared_converter_and_the_server(args, option):
    result = subprocess.run([sys.executable, "-m", "bundles.console.main", *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert option in result.stdout + result.stderr


def test_any_setting_of_the_bundle_through_set(setup, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(setup["image"]), "-o", str(out), "--bundle", "sat_nano", "--model", setup["models"]["sat_nano"],
                 "--device", "cpu", "--prompts", "liver", "--set", "tiling=fit", "--set", "threshold=2"]) == 0
    (written,) = list(out.glob("*/seg.nii.gz"))
    assert not np.asarray(nib.load(written).dataobj).any(), "threshold 2 (a JSON number) reached the inferer: nothing is above it"


def test_a_reader_that_stops_early_is_no_error():
    result = subprocess.run(f"{sys.executable} -m bundles.console.main bundles | head -1", shell=True, capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.stdout.strip() in BUNDLES and result.stderr == ""
