"""Every command in README.md and the bundle docs runs as written, on tiny data, so docs cannot drift.

The commands are extracted from the ```bash blocks of the Markdown files (lines joined at a trailing ``\\``;
``cd X`` changes the folder for the rest of its block). The test changes only what makes them tiny and
keeps the repository clean:

- ``demo_output/`` (what README command 1 makes) is a temporary folder holding a tiny demo model (trained by
  the ``tiny_sat_model`` fixture with the same configs, plus ``tests/data/tiny_sat.json``) and small
  phantom data lists in its place;
- ``tests/data/tiny_sat.json`` is added to every config list that holds ``configs/demo.json``, training gets
  ``--max_steps 2`` (text pretraining ``--steps 2``), runs log to a temporary MLflow store.

Blocks after ``<!-- needs: official weights -->`` are not run (they need files we cannot ship); the
``pip install``/``main_job`` command 1 and ``bash .ci/run`` are what CI itself runs, and the server that
``python -m tools.serve`` starts is tested live by ``tests/test_monailabel_server.py``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import pytest

from bundles.data.phantom import make_ct_phantom
from bundles.sam_unet.sa_med2d import write_sa_med2d

REPO = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "sat_nano/docs/README.md", "sat_pro/docs/README.md", "sam_med3d/docs/README.md", "samed_lora/docs/README.md",
        "sam_unet/docs/README.md"]
TINY = str(REPO / "tests" / "data" / "tiny_sat.json")
TINY_SAM_MED3D = str(REPO / "tests" / "data" / "tiny_sam_med3d.json")
#: The tiny overlay of each bundle other than SAT's (the folder a command runs in, or its configs' folder).
TINY_BY_BUNDLE = {"sam_med3d": TINY_SAM_MED3D, "samed_lora": str(REPO / "tests/data/tiny_samed.json"),
                  "sam_unet": str(REPO / "tests/data/tiny_sam_unet.json")}
RUNNABLE = ("python -m monai.bundle", "medseg ", "torchrun ", "python -m tools.", "python -m bundles.", "python -c ")
#: CI itself runs command 1 and .ci/run; the server command runs live in tests/test_monailabel_server.py (and
#: the Orthanc-backed tests), the serving benchmark needs a running server (tests/test_server_manners.py)
NOT_RUN_HERE = ("python -m tools.main_job", "python -m pip", "bash .ci/run", "mlflow ", "python -m tools.serve",
                "python -m tools.benchmark_serving")
SKIP_MARK = "<!-- needs: official weights -->"


@dataclass(frozen=True)
class DocCommand:
    source: str
    line: int
    cwd: str
    command: str


def _commands(doc: str) -> list[DocCommand]:
    text = (REPO / doc).read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(text):
        if text[i].strip() == "```bash" and not (i > 0 and text[i - 1].strip() == SKIP_MARK):
            cwd, i = ".", i + 1
            while text[i].strip() != "```":
                start, line = i, text[i].strip()
                while line.endswith("\\"):
                    i += 1
                    line = line[:-1].rstrip() + " " + text[i].strip()
                i += 1
                if line.startswith("cd ") and "&&" not in line:
                    cwd = os.path.normpath(os.path.join(cwd, line[3:].strip()))
                    continue
                if line.startswith("cd ") and "&&" in line:
                    folder, line = (part.strip() for part in line[3:].split("&&", 1))
                    cwd = os.path.normpath(os.path.join(cwd, folder))
                if line.startswith(RUNNABLE) and not line.startswith(NOT_RUN_HERE):
                    found.append(DocCommand(doc, start + 1, cwd, line))
        i += 1
    return found


ALL = [c for doc in DOCS for c in _commands(doc)]


def test_the_docs_hold_the_commands_users_are_told_to_run():
    kinds = {c.command.split()[0] for c in ALL}
    assert {"python", "medseg", "torchrun"} <= kinds, kinds
    configs = " ".join(c.command for c in ALL)
    for config in ("inference.json", "evaluate.json", "train.json", "multi_gpu_train.json", "pretrain_text.json"):
        assert config in configs, f"no documented command uses {config}"


def _tiny_case(folder: Path, seed: int, case_id: str) -> dict:
    phantom = make_ct_phantom(seed, shape=(80, 64, 20), spacing=(2.0, 2.0, 6.0))
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(phantom.image, phantom.affine), folder / f"{case_id}.nii.gz")
    nib.save(nib.Nifti1Image(phantom.labels, phantom.affine), folder / f"{case_id}_seg.nii.gz")
    return {"id": case_id, "image": str(folder / f"{case_id}.nii.gz"), "mask": str(folder / f"{case_id}_seg.nii.gz"),
            "legend": {str(k): v for k, v in phantom.legend.items() if v in ("liver", "spleen")}, "modality": "ct"}


@pytest.fixture(scope="module")
def demo_output(tiny_sat_model, tmp_path_factory) -> Path:
    """A stand-in for what README command 1 leaves in ``demo_output/``, with a tiny model."""
    root = tmp_path_factory.mktemp("docs") / "demo_output"
    shutil.copytree(tiny_sat_model, root / "ct" / "model")
    shutil.copytree(tiny_sat_model, root / "mr" / "model")
    data = root / "ct" / "data"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text(json.dumps(_tiny_case(data, 31, "train")) + "\n")
    (data / "test.jsonl").write_text(json.dumps(_tiny_case(data, 32, "patient_b")) + "\n")
    _tiny_clicks_model(root / "clicks", data / "train.jsonl")
    (root / "clicks" / "data").mkdir()
    shutil.copy(data / "test.jsonl", root / "clicks" / "data" / "test.jsonl")
    for job in ("samed", "sam_unet"):
        shutil.copytree(data, root / job / "data")
    _tiny_model("samed_lora", root / "samed", root / "samed" / "data" / "train.jsonl")
    write_sa_med2d(root / "sam_unet" / "data" / "train.jsonl", root / "sam_unet" / "data" / "sa_med2d")
    _tiny_model("sam_unet", root / "sam_unet", root / "sam_unet" / "data" / "sa_med2d")
    return root


def _tiny_model(bundle: str, folder: Path, train_data: Path) -> None:
    """What ``python -m tools.main_job --job samed`` / ``sam_unet`` leaves in ``demo_output/<job>/model``, tiny: 2 steps."""
    from monai.bundle import run

    configs = REPO / bundle / "configs"
    overlays = [TINY_BY_BUNDLE[bundle], str(REPO / "tests" / "data" / f"{Path(TINY_BY_BUNDLE[bundle]).stem}_train.json")]
    run(config_file=[str(configs / "train.json"), str(configs / "demo.json"), *overlays], bundle_root=str(REPO / bundle),
        train_data=str(train_data), ckpt_dir=str(folder / "train"), export_dir=str(folder / "model"), use_mlflow=False, max_steps=2)


def _tiny_clicks_model(folder: Path, train_list: Path) -> None:
    """What ``python -m tools.main_job --job clicks`` leaves in ``demo_output/clicks/model``, tiny: 2 steps."""
    from monai.bundle import run

    bundle = REPO / "sam_med3d"
    run(config_file=[str(bundle / "configs/train.json"), str(bundle / "configs/demo.json"), TINY_SAM_MED3D,
                     str(REPO / "tests/data/tiny_sam_med3d_train.json")],
        bundle_root=str(bundle), train_data=str(train_list), ckpt_dir=str(folder / "train"), export_dir=str(folder / "model"),
        use_mlflow=False)


def _tiny(command: str, demo_output: Path, tmp: Path, cwd: str = ".") -> str:
    command = re.sub(r"(\.\./)?demo_output/", f"{demo_output}/", command)
    bundle = next((b for b in TINY_BY_BUNDLE if cwd.startswith(b) or f"{b}/configs" in command), None)
    tiny = TINY_BY_BUNDLE[bundle] if bundle else TINY
    command = re.sub(r"\[([^\]]*/demo\.json[^\]]*)\]", lambda m: f"[{m.group(1)},'{tiny}']", command)
    if "monai.bundle run" in command:
        training = "train.json" in command
        if training and "--max_steps" not in command:
            command += " --max_steps 2"
        if training:
            command = re.sub(r"--max_steps \d+", "--max_steps 2", command)
        if "pretrain_text.json" in command:
            command = re.sub(r"--steps \d+", "--steps 2", command) + " --batch_size 8 --output_dir " + shlex.quote(str(tmp / "pretrain"))
        if training or "pretrain_text.json" in command:
            command += f" --tracking_uri sqlite:///{tmp}/mlruns.db"
        if training and "--ckpt_dir" not in command:
            command += f" --ckpt_dir {tmp}/ckpt"
    return command


@pytest.mark.parametrize("doc_command", ALL, ids=[f"{c.source}:{c.line}" for c in ALL])
def test_documented_command_runs_as_written(doc_command: DocCommand, demo_output, tmp_path):
    command = _tiny(doc_command.command, demo_output, tmp_path, doc_command.cwd)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", "-c", command], cwd=REPO / doc_command.cwd, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f"{doc_command.source}:{doc_command.line} failed:\n$ {command}\n{result.stderr[-4000:]}"
