"""Adding a family touches no core file: a toy 3D click family, driven through every entry point.

The family is its network (``bundles/networks/toy3d/``: two convolutions, image + click maps -> logits, hand-set
so a positive click in a bright object marks the object) and its glue (``bundles/toy3d/``: inputs, session,
serving, training data and module, converter). Its bundle folder is made here in a temporary folder from
``tests/data/toy3d_bundle/configs/`` and found through ``MEDSEG_BUNDLE_PATH``, as a bundle kept outside the
repository is. It then runs through ``bundles.segment``, ``bundles.open_session``, ``medseg convert`` and
``medseg segment``, the per-case job (``python -m monai.bundle run``) and a live MONAI Label server's
``/infer`` and ``/train``. CONTRIBUTING.md ("Add a family") uses it as the worked example.

The image is the oblique LPS phantom of ``tests/test_core_toy_family.py``: a bright ellipsoid centred at voxel
(24, 20, 10), its reference mask beside it; a mask that came back on another grid would miss it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import bundles
from bundles.bundle_configs import BUNDLE_PATH_ENV, bundle_dir, bundle_names
from bundles.bundle_declarations import declaration
from bundles.console.main import main as medseg
from bundles.interactive.session import ClickSession
from bundles.metrics.segmentation import dice
from tests.test_core_names_no_family import FAMILIES
from tests.test_core_toy_family import _imports, _oblique_lps_phantom
from tests.test_train_wiring import differences, shared_wiring

REPO = Path(__file__).resolve().parents[1]
#: The bundle folder's configs (copied into a temporary folder named ``toy3d``).
TEMPLATE = REPO / "tests" / "data" / "toy3d_bundle"
CENTRE, EDGE = [24, 20, 10], [14, 20, 10]  #: the bright ellipsoid's centre and a voxel inside it near its edge
OUTSIDE = [40, 5, 3]  #: soft tissue, far from the ellipsoid


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy bundle folder ``<tmp>/bundles/toy3d`` (found through ``MEDSEG_BUNDLE_PATH``) with the weights its
    declared converter writes, and the phantom and its reference mask."""
    root = tmp_path_factory.mktemp("toy3d")
    folder = root / "bundles" / "toy3d"
    shutil.copytree(TEMPLATE, folder)
    image, mask = _oblique_lps_phantom(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(BUNDLE_PATH_ENV, str(root / "bundles"))
        declaration.cache_clear()  # declarations are cached by bundle name
        with pytest.MonkeyPatch.context() as argv, pytest.raises(SystemExit) as converted:
            argv.setattr(sys, "argv", sys.argv[:])  # medseg convert runs the declared converter as python -m does
            medseg(["convert", "toy3d", "--output", str(folder / "models" / "model.pt")])
        assert converted.value.code == 0
        yield {"root": root, "folder": folder, "image": image, "mask": mask, "reference": nib.load(mask).get_fdata() > 0}
    declaration.cache_clear()


def _on_grid(written: nib.Nifti1Image, image: Path) -> bool:
    source = nib.load(image)
    return written.shape == source.shape and np.allclose(written.affine, source.affine, atol=1e-4)


def test_no_core_module_imports_the_toy_and_the_name_check_covers_it():
    """The core's imports and code strings are checked for the toy as for every family."""
    assert "toy3d" in FAMILIES  # tests/test_core_names_no_family.py reads the core's strings for its name
    family = ("bundles/toy3d/", "bundles/networks/toy3d/")
    offenders = [p.relative_to(REPO).as_posix() for p in sorted((REPO / "bundles").rglob("*.py"))
                 if not p.relative_to(REPO).as_posix().startswith(family)
                 and any(m.startswith(("bundles.toy3d", "bundles.networks.toy3d")) for m in _imports(p))]
    assert offenders == []


def test_the_bundle_is_found_and_declares_what_the_core_reads(toy):
    from monai.bundle import ConfigParser

    assert "toy3d" in bundle_names() and bundle_dir("toy3d") == toy["folder"]
    declared = declaration("toy3d")
    assert declared.prompt_kinds == ("clicks",) and declared.weights_files == ("model.pt",) and declared.missing_weights(None) == []
    assert declared.converter == "bundles.toy3d.convert" and "--bundle toy3d" in declared.example
    train = json.loads((toy["folder"] / "configs" / "train.json").read_text())
    reference = json.loads((REPO / "sam_med3d" / "configs" / "train.json").read_text())
    assert differences({"sam_med3d": shared_wiring(reference), "toy3d": shared_wiring(train)}) == []
    parser = ConfigParser()
    parser.read_config(str(toy["folder"] / "configs" / "train.json"))
    assert callable(parser.get_parsed_content("serving_train_data"))


def test_the_converter_command_shows_its_help(capsys):
    from bundles.toy3d.convert import main

    assert main(["--help"]) == 0
    shown = capsys.readouterr()
    assert "Toy3D's initial weights" in shown.out + shown.err and "--seed" in shown.out + shown.err


def test_bundles_segment_returns_the_clicked_object_on_the_input_grid(toy):
    masks, names, grid = bundles.segment("toy3d", toy["image"], device="cpu", points=[CENTRE], point_labels=[1], name="blob")
    assert names == ["blob"] and masks.shape == (1, *toy["reference"].shape)
    assert np.allclose(grid.affine, nib.load(toy["image"]).affine, atol=1e-5)
    assert dice(masks[0], toy["reference"]) > 0.9


def test_open_session_answers_click_by_click_with_one_encoding(toy):
    from bundles.io.readers import read_image

    session = bundles.open_session("toy3d", device="cpu")
    image, grid = read_image(toy["image"])
    session.set_image(image[0], grid)
    assert isinstance(session, ClickSession)
    near_edge = session.add_click(EDGE, positive=True, obj="blob")
    both = session.add_click(CENTRE, positive=True, obj="blob")
    assert 0.5 < dice(near_edge, toy["reference"]) < dice(both, toy["reference"])
    assert not session.add_click(OUTSIDE, positive=True, obj="tissue").any()  # nothing bright there
    assert session.encodings == 1  # the image features are computed once
    assert np.array_equal(session.undo("blob"), near_edge)
    session.reset()
    assert not session.mask("blob").any()


def test_medseg_segment_writes_the_usual_files(toy, tmp_path):
    out = tmp_path / "out"
    assert medseg(["segment", str(toy["image"]), "-o", str(out), "--bundle", "toy3d", "--name", "blob",
                   "--clicks", ",".join(map(str, CENTRE)), "--device", "cpu"]) == 0
    (written,) = out.glob("*/seg.nii.gz")
    assert _on_grid(nib.load(written), toy["image"])
    assert dice(np.asarray(nib.load(written).dataobj) == 1, toy["reference"]) > 0.9
    assert json.loads((written.parent / "legend.json").read_text())["labels"] == {"1": "blob"}


def test_the_per_case_job_runs_from_the_bundle_folder_and_scores_the_mask(toy, tmp_path):
    case = {"image": str(toy["image"]), "points": [CENTRE], "point_labels": [1], "name": "blob",
            "mask": str(toy["mask"]), "legend": {1: "blob"}}
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(toy["folder"] / "configs" / "inference.json"),
               "--bundle_root", str(toy["folder"]), "--input_dict", repr(case), "--output_dir", str(tmp_path / "out"),
               "--device", "cpu", "--progress", "False"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (row,) = [r for r in _csv_rows(tmp_path / "out" / "metrics.csv") if r["class"] == "blob"]
    assert float(row["dice"]) > 0.9


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_live_server_serves_and_trains_the_toy(toy):
    """``/infer``: the core click task on toy sessions (a second click decodes only itself); ``/train``: the
    bundle's ``train.json`` on a saved final label, whose exported model still finds the object."""
    from tests.needs import require

    require(packages=("monailabel",))
    import requests

    from tests.live_server import infer, phantom_studies, result, running_server

    root = toy["root"] / "server"
    studies, mask = phantom_studies(root)
    model_dirs = {"toy3d": str(toy["folder"] / "models")}
    with running_server(root, studies, model_dirs, env={BUNDLE_PATH_ENV: str(toy["root"] / "bundles")}) as live:
        info = requests.get(f"{live.url}/info/", timeout=30).json()
        assert info["models"]["toy3d"]["type"] == "deepgrow" and "toy3d" in info["trainers"]
        first_meta, first = result(infer(live.url, "toy3d", "phantom", {"foreground": [CENTRE], "label": "blob", "client_id": "a"}))
        assert first_meta["session"] == {"new": True, "clicks_added": 1, "replayed": False, "encodings": 1}
        assert _on_grid(first, studies / "phantom.nii.gz")
        assert dice(np.asarray(first.dataobj) > 0, toy["reference"]) > 0.9
        second_meta, second = result(infer(live.url, "toy3d", "phantom",
                                           {"foreground": [CENTRE], "background": [EDGE], "label": "blob", "client_id": "a"}))
        assert second_meta["session"] == {"new": False, "clicks_added": 1, "replayed": False, "encodings": 1}
        assert np.count_nonzero(second.dataobj) < np.count_nonzero(first.dataobj)

        with open(mask, "rb") as f:
            saved = requests.put(f"{live.url}/datastore/label", params={"image": "phantom", "tag": "final"},
                                 files={"label": ("phantom.nii.gz", f), "params": (None, json.dumps({"label_names": {"blob": 1}}))},
                                 timeout=60)
        assert saved.status_code == 200, saved.text[:500]
        answer = requests.post(f"{live.url}/train/toy3d", params={"run_sync": "true"}, json={"max_steps": 3, "device": "cpu"}, timeout=600)
        assert answer.status_code == 200, answer.text[:1000]
        trained = answer.json()
    assert trained["cases"] == 1 and trained["max_steps"] == 3
    before, after = (torch.load(Path(d) / "model.pt", weights_only=True) for d in (model_dirs["toy3d"], trained["model_dir"]))
    assert any(not torch.equal(before[k], after[k]) for k in before), "three optimiser steps changed the weights"
    masks, _, _ = bundles.segment("toy3d", toy["image"], model_dir=trained["model_dir"], device="cpu", points=[CENTRE], point_labels=[1])
    assert dice(masks[0], toy["reference"]) > 0.5
