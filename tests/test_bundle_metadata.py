"""Every bundle's metadata.json: the versions it lists are the ones ``pyproject.toml`` installs, and it passes
MONAI's ``verify_metadata`` offline against the shipped schema (``bundles/data/meta_schema_20240725.json``).

The network checks (``verify_net_in_out``, ``ckpt_export``) are in ``test_model_zoo_net_in_out.py`` and
``test_model_zoo_export.py``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from monai.bundle import verify_metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bundles.bundle_configs import BUNDLES  # the discovered bundle folders

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "bundles" / "data" / "meta_schema_20240725.json"
#: md5 of the shipped schema, as given to ``verify_metadata --hash_val`` in the bundle READMEs.
SCHEMA_MD5 = "76e1add273836515d0bbb3bc71962474"
#: metadata key -> distribution name (MONAI's mandatory version fields).
CORE_VERSIONS = {"monai_version": "monai", "pytorch_version": "torch", "numpy_version": "numpy"}
#: Packages the bundle code paths need, which every bundle must list in ``required_packages_version``.
NEEDED = {"scikit-image", "nibabel", "itk-io", "pydicom", "highdicom", "mlflow", "tqdm", "matplotlib",
          "fire", "jsonschema", "pytorch-ignite", "medseg-bundles"}
#: What a family needs beyond that (SAT's text encoders).
FAMILY_NEEDS = {"sat_nano": {"transformers"}, "sat_pro": {"transformers"}, "sam_unet": {"pillow"}}


def _metadata(bundle: str) -> dict:
    return json.loads((ROOT / bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))


def _listed_versions(bundle: str) -> dict[str, str]:
    """Distribution name -> version, for every version the metadata states."""
    meta = _metadata(bundle)
    listed = {dist: meta[key] for key, dist in CORE_VERSIONS.items()}
    listed.update(meta["required_packages_version"])
    return listed


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = {canonicalize_name(Requirement(r).name): Requirement(r) for r in project["dependencies"]}
    reqs[canonicalize_name(project["name"])] = Requirement(f"{project['name']}=={project['version']}")
    return reqs


def _release(text: str) -> tuple[int, ...]:
    return Version(text).release


@pytest.mark.parametrize("bundle", BUNDLES)
def test_required_packages_use_the_current_key(bundle):
    """MONAI 1.6.1 renames the deprecated ``optional_packages_version`` with a warning; the schema requires the new one."""
    meta = _metadata(bundle)
    assert "optional_packages_version" not in meta
    assert meta["required_packages_version"]


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_lists_the_packages_the_bundle_needs(bundle):
    listed = {canonicalize_name(name) for name in _metadata(bundle)["required_packages_version"]}
    assert {canonicalize_name(n) for n in NEEDED | FAMILY_NEEDS.get(bundle, set())} <= listed


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_versions_are_what_pyproject_allows(bundle):
    """Each listed version satisfies pyproject.toml's specifier (numpy 2.x against numpy<2 fails here)."""
    reqs = _pyproject_requirements()
    for name, listed in _listed_versions(bundle).items():
        key = canonicalize_name(name)
        assert key in reqs, f"{bundle}: {name} is in metadata.json but not a dependency in pyproject.toml"
        assert reqs[key].specifier.contains(listed, prereleases=True), (
            f"{bundle}: metadata.json says {name} {listed}, pyproject.toml requires {reqs[key]}"
        )


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_versions_match_the_installed_packages(bundle):
    """monai/torch/numpy exactly (MONAI's CI pins them with ==); every other package at least by major.minor."""
    for name, listed in _listed_versions(bundle).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            pytest.fail(f"{bundle}: metadata.json lists {name} {listed}, which is not installed")
        exact = name in CORE_VERSIONS.values()
        want, have = _release(listed), _release(installed)
        if not exact:
            want, have = want[:2], have[:2]
        assert want == have, f"{bundle}: metadata.json says {name} {listed}, installed is {installed}"


def test_shipped_schema_is_the_documented_one():
    assert hashlib.md5(SCHEMA.read_bytes()).hexdigest() == SCHEMA_MD5


@pytest.mark.parametrize("bundle", BUNDLES)
def test_verify_metadata_offline(bundle):
    verify_metadata(meta_file=str(ROOT / bundle / "configs" / "metadata.json"), filepath=str(SCHEMA),
                    hash_val=SCHEMA_MD5, hash_type="md5")


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda m: m.pop("authors"), id="missing-authors"),
        pytest.param(lambda m: m.pop("required_packages_version"), id="missing-required-packages"),
        pytest.param(lambda m: m.update(numpy_version=1.26), id="version-not-a-string"),
        pytest.param(lambda m: m["network_data_format"]["inputs"]["image"].pop("num_channels"), id="tensor-without-channels"),
    ],
)
def test_verify_metadata_rejects_broken_metadata(tmp_path, breakage):
    meta = copy.deepcopy(_metadata("sat_nano"))
    breakage(meta)
    broken = tmp_path / "metadata.json"
    broken.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ValueError, match="Failed validating"):
        verify_metadata(meta_file=str(broken), filepath=str(SCHEMA), hash_val=SCHEMA_MD5, hash_type="md5")


def test_verify_metadata_refuses_a_changed_schema_file(tmp_path):
    """With --hash_val, a local schema that is not the shipped one stops the check (it is never downloaded)."""
    schema = tmp_path / "schema.json"
    schema.write_text(SCHEMA.read_text(encoding="utf-8").replace('"authors"', '"author"'), encoding="utf-8")
    with pytest.raises(ValueError, match="hash check of existing file failed"):  # monai.apps.utils.HashCheckError
        verify_metadata(meta_file=str(ROOT / "sat_nano" / "configs" / "metadata.json"), filepath=str(schema),
                        hash_val=SCHEMA_MD5, hash_type="md5")


def test_documented_verify_metadata_command_runs_offline():
    """The exact command of the READMEs, run from inside the bundle folder."""
    cmd = [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", "configs/metadata.json",
           "--filepath", "../bundles/data/meta_schema_20240725.json", "--hash_val", SCHEMA_MD5]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT / "sat_nano", env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "metadata is verified with no error" in result.stdout + result.stderr
