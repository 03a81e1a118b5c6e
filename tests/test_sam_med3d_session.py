"""SAM-Med3D's click session, prompts and bundle inference on an oblique LPS phantom (tiny network,
real code paths): the click mapping is exact, cached embeddings give the uncached results, undo/reset,
and bad clicks are one clear error with no output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from bundles.errors import PromptError
from bundles.interactive.evaluation import ClickEvaluation
from bundles.interactive.prompt_check import ClickPromptCheck
from bundles.interactive.session import ClickSession
from bundles.io.cases import parse_cases
from bundles.io.readers import read_image
from bundles.sam_med3d.evaluation import BoxCentredWindows
from bundles.sam_med3d.preprocessing import box_window_start, point_window_start, znormalize_positive
from bundles.sam_med3d.session import SAMMed3DSession
from bundles.transforms.window_crop import crop_window
from tests.test_core_toy_family import _oblique_lps_phantom
from tests.test_sam_med3d_network import _tiny

REPO = Path(__file__).resolve().parents[1]
TINY_OVERLAY = REPO / "tests" / "data" / "tiny_sam_med3d.json"
BLOB_CENTRE = (24, 20, 10)  # the phantom's bright ellipsoid (1000 HU in 40 HU)


@pytest.fixture()
def phantom(tmp_path):
    image, mask = _oblique_lps_phantom(tmp_path)
    volume, grid = read_image(image)
    return image, mask, volume, grid


def _session(phantom) -> SAMMed3DSession:
    _, _, volume, grid = phantom
    session = SAMMed3DSession(_tiny(), device="cpu")
    session.set_image(volume[0], grid, modality="ct")
    return session


def test_the_session_is_a_core_click_session(phantom):
    assert isinstance(_session(phantom), ClickSession)


def test_a_click_lands_on_the_same_world_point_after_resampling_and_cropping(phantom):
    _, _, volume, grid = phantom
    session = _session(phantom)
    voxel = np.array([31.0, 17.0, 12.0])
    point = session.to_model(voxel)
    start = point_window_start(point, session.size)
    in_window = point - start
    world = grid.affine @ np.append(voxel, 1)
    assert np.allclose(session.window_affine(start) @ np.append(in_window, 1), world, atol=1e-6)
    assert np.allclose(in_window, np.full(3, session.size // 2), atol=0.5)  # the window is centred on it
    # the window's intensities follow: the blob centre is bright in the input and in the window
    centre = session.to_model(BLOB_CENTRE) - start
    window = crop_window(session._volume, start, session.size)[0]
    assert float(window[tuple(np.round(centre).astype(int))]) > 900 and float(volume[0][BLOB_CENTRE]) == 1000


def test_cached_embedding_clicks_equal_running_the_whole_model_per_click(phantom):
    session = _session(phantom)
    clicks = [((24, 20, 10), True), ((30, 22, 10), False), ((20, 18, 9), True)]
    for voxel, positive in clicks:
        session.add_click(voxel, positive, obj="blob")
    assert session.encodings == 1
    state = session._objects["blob"].clicks
    net = session.network
    start = state[0].start
    window = znormalize_positive(crop_window(session._volume, start, session.size))[None]
    prev = None
    with torch.no_grad():
        for (voxel, positive), got in zip(clicks, state):
            point = torch.as_tensor(session.to_model(voxel) - start, dtype=torch.float32).view(1, 1, 3)
            prev = net(window, point, torch.tensor([[int(positive)]]), prev)  # image encoder re-run every click
            assert torch.allclose(got.low_res, prev, atol=1e-6)


def test_undo_reset_and_several_objects(phantom):
    session = _session(phantom)
    first = session.add_click(BLOB_CENTRE, True, obj="a")
    second = session.add_click((30, 22, 10), False, obj="a")
    other = session.add_click((10, 10, 5), True, obj="b")
    assert session.objects == ["a", "b"] and session.encodings == 2
    assert first.shape == (48, 40, 20) and not np.array_equal(first, second)
    assert np.array_equal(session.undo("a"), first)
    assert np.array_equal(session.mask("b"), other)
    assert not session.undo("a").any() and session.objects == ["b"]
    session.reset()
    assert session.objects == [] and not session.mask("b").any()
    session.add_click(BLOB_CENTRE, True, obj="a")
    assert session.encodings == 2  # the window's embedding was cached


def test_a_click_outside_the_window_moves_it_by_whole_low_res_voxels(phantom):
    session = _session(phantom)
    session.add_click((5, 5, 2), True)
    session.add_click((45, 38, 18), True)  # > 32 model voxels away: outside the tiny 32³ window
    first, second = session._objects["object"].clicks
    moved = second.start - first.start
    assert session.encodings == 2 and np.any(moved != 0) and np.all(moved % session.factor == 0)
    assert np.all(np.abs(session.to_model((45, 38, 18)) - second.start - session.size // 2) <= session.factor)


def test_click_outside_the_image_is_a_prompt_error(phantom):
    session = _session(phantom)
    with pytest.raises(PromptError, match=r"click \(48, 0, 0\) is outside the image of shape \(48, 40, 20\)"):
        session.add_click((48, 0, 0))


def test_box_window_follows_torchio_centring():
    mask = np.zeros((200, 200, 200), bool)
    mask[10:21, 50:52, 100:101] = True  # centres 15.5, 51, 100.5
    assert box_window_start(mask, 128).tolist() == [15 - 64, 51 - 64, 100 - 64]
    assert point_window_start((15.4, 51.6, 100.0), 128).tolist() == [15 - 64, 52 - 64, 100 - 64]


def test_znormalisation_uses_voxels_above_zero_and_the_unbiased_std():
    window = torch.tensor([[[[0.0, 2.0], [4.0, -5.0]]]])
    out = znormalize_positive(window)
    mean, std = 3.0, float(np.std([2.0, 4.0], ddof=1))
    assert torch.allclose(out, (window - mean) / std)
    with pytest.raises(ValueError, match="no varying intensities above 0"):
        znormalize_positive(torch.zeros(1, 4, 4, 4))


def _run_bundle(tmp_path, model_dir: Path, input_dict: dict, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file",
         str([str(REPO / "sam_med3d/configs/inference.json"), str(TINY_OVERLAY)]),
         "--bundle_root", str(REPO / "sam_med3d"), "--model_dir", str(model_dir), "--input_dict", repr(input_dict),
         "--output_dir", str(out)],
        cwd=tmp_path, capture_output=True, text=True)


@pytest.fixture()
def tiny_model_dir(tmp_path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    torch.save(_tiny().state_dict(), folder / "model.pt")
    return folder


def test_bundle_writes_objects_on_the_input_grid_and_equals_the_session(phantom, tiny_model_dir, tmp_path):
    image, _, volume, grid = phantom
    world = (grid.affine @ np.array([30.0, 22.0, 10.0, 1.0]))[:3].round(3).tolist()
    input_dict = {"image": str(image), "modality": "ct", "points_space": "world", "objects": [
        {"name": "blob", "points": [(grid.affine @ np.array([*BLOB_CENTRE, 1.0]))[:3].round(3).tolist(), world], "point_labels": [1, 0]},
        {"name": "corner", "points": [[10.0, 10.0, 5.0]], "point_labels": [1]}]}
    input_dict["objects"][1]["points"] = [(grid.affine @ np.array([10.0, 10.0, 5.0, 1.0]))[:3].round(3).tolist()]
    run = _run_bundle(tmp_path, tiny_model_dir, input_dict, tmp_path / "out")
    assert run.returncode == 0, run.stderr
    seg = nib.load(tmp_path / "out" / "toy" / "seg.nii.gz")
    assert seg.shape == grid.shape and np.allclose(seg.affine, grid.affine)
    legend = json.loads((tmp_path / "out" / "toy" / "legend.json").read_text())
    assert "blob" in json.dumps(legend) and "corner" in json.dumps(legend)
    session = _session(phantom)
    session.add_click(BLOB_CENTRE, True, "blob")
    expected = session.add_click((30, 22, 10), False, "blob")
    written = nib.load(tmp_path / "out" / "toy" / "masks" / "blob.nii.gz").get_fdata() > 0
    assert np.array_equal(written, expected)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"points": [[24, 20, 100]], "point_labels": [1]}, r"click 1 \[24, 20, 100\] \(voxel indices\) is outside the image of shape \(48, 40, 20\)"),
        ({"points": [[0, 0, 0]], "point_labels": [1], "points_space": "world"}, r"click 1 \[0, 0, 0\] \(RAS mm, voxel .*\) is outside"),
        ({"points": [], "point_labels": []}, "no clicks"),
        ({"points": [[1, 2, 3]], "point_labels": [2]}, r"must be 1 \(inside\) or 0 \(outside\), got 2"),
        ({"points": [[1, 2, 3], [4, 5, 6]], "point_labels": [1]}, "2 points but 1 point_labels"),
        ({"points": [[1, 2]], "point_labels": [1]}, r"points must be a list of \[x, y, z\] numbers"),
        ({"points": [[1, 2, 3]], "point_labels": [1], "points_space": "ijk"}, "points_space must be 'voxel'"),
        ({"objects": [{"name": "a", "points": [[1, 2, 3]], "point_labels": [1]}] * 2}, "object names must differ"),
        ({"points": [[1, 2, 3]], "point_labels": [1], "modality": "ct scan"}, "unknown modality 'ct scan'"),
    ],
)
def test_bad_clicks_are_prompt_errors_naming_the_value(phantom, fields, message):
    (case,) = parse_cases({"image": str(phantom[0]), **fields})
    with pytest.raises(PromptError, match=message):
        ClickPromptCheck()(case)


def test_a_bad_click_on_the_command_line_is_one_line_and_writes_nothing(phantom, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    run = _run_bundle(tmp_path, tiny_model_dir, {"image": str(phantom[0]), "points": [[24, 20, 100]], "point_labels": [1]}, out)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: PromptError: {phantom[0]}: 'object 1': click 1 [24, 20, 100] (voxel indices) is outside the image of shape (48, 40, 20)")
    assert not out.exists()


def test_evaluation_writes_dice_per_click_table_and_plot_reproducibly(phantom, tmp_path):
    image, mask, _, _ = phantom
    data = {"cases": str(tmp_path / "test.jsonl")}
    (tmp_path / "test.jsonl").write_text(json.dumps({"image": str(image), "mask": str(mask), "legend": {"1": "blob"}, "modality": "ct"}) + "\n")
    windows = BoxCentredWindows(SAMMed3DSession(_tiny(), device="cpu"))
    rows = ClickEvaluation(windows, data, tmp_path / "eval", "SAM-Med3D", num_clicks=3, progress=False).run()
    again = ClickEvaluation(windows, data, tmp_path / "again", "SAM-Med3D", num_clicks=3, progress=False).run()
    assert [r["click"] for r in rows] == [1, 2, 3] and rows == again
    assert rows[0]["positive"]  # the first ritm click on an empty prediction is inside the object
    assert all(0.0 <= r["dice_window"] <= 1.0 and 0.0 <= r["dice_volume"] <= 1.0 for r in rows)
    table = (tmp_path / "eval" / "clicks.md").read_text()
    assert "| blob | 1 |" in table and "3 clicks" in table
    assert (tmp_path / "eval" / "dice_vs_clicks.png").stat().st_size > 1000
    lines = (tmp_path / "eval" / "clicks.csv").read_text().splitlines()
    assert lines[0] == "case,class,click,dice_window,dice_volume" and len(lines) == 4
    clicks = json.loads((tmp_path / "eval" / "toy" / "clicks.json").read_text())
    assert [c["positive"] for c in clicks["blob"]] == [r["positive"] for r in rows]
    final = nib.load(tmp_path / "eval" / "toy" / "masks" / "blob.nii.gz")
    assert final.shape == (48, 40, 20) and np.allclose(final.affine, phantom[3].affine)


def test_open_session_uses_the_bundle_config_and_refuses_missing_weights(phantom, tiny_model_dir, tmp_path):
    from bundles import open_session
    from bundles.errors import CheckpointError

    with pytest.raises(CheckpointError, match="missing model files: .*model.pt; convert the official weights from the repository root with"):
        open_session("sam_med3d", tmp_path / "nothing")
    _, _, volume, grid = phantom
    overlay = json.loads(TINY_OVERLAY.read_text())
    session = open_session("sam_med3d", tiny_model_dir, device="cpu", settings=overlay)
    session.set_image(volume[0], grid, "ct")
    direct = _session(phantom)
    assert np.array_equal(session.add_click(BLOB_CENTRE), direct.add_click(BLOB_CENTRE))
