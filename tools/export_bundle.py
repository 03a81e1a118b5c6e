"""Export a bundle as a self-contained zip: configs, docs, LICENSE, the code it needs, exact versions, weights.

    python -m tools.export_bundle run --bundle samed_lora --output dist/samed_lora.zip [--model_dir models/]

The zip holds one folder named after the bundle, laid out as a MONAI model-zoo bundle:

- ``configs/`` (every config of the bundle; each config's ``imports`` starts with ``$import scripts``),
  ``docs/``, ``LICENSE``;
- ``scripts/bundles/``: the modules of this repository's ``bundles`` package that the configs reach
  (found by following the imports of every ``bundles.*`` name the configs mention, package data included),
  and ``scripts/__init__.py``, which puts ``scripts/`` on ``sys.path`` so the configs' ``bundles.*`` names
  resolve to that copy;
- ``configs/metadata.json`` with ``required_packages_version`` set to the exact versions installed here of
  the packages the project declares (``medseg-bundles`` itself removed: it is vendored);
- ``models/``: the files of ``--model_dir`` when given.

Run it from the unzipped bundle folder, in an environment holding only those packages:
``python -m monai.bundle run --config_file configs/inference.json --input_dict ...`` (``python -m`` puts the
current folder first on ``sys.path``, which is how ``scripts`` is found).
"""

from __future__ import annotations

import importlib.metadata
import json
import modulefinder
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import fire

from bundles.bundle_configs import BUNDLES

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "bundles"
SCRIPTS_INIT = '''"""Vendored code of this bundle: importing ``scripts`` makes its ``bundles`` package importable."""

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)
'''
_NAME = re.compile(r"\bbundles(?:\.[A-Za-z_]\w*)+")


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _named_modules(configs: list[dict[str, Any]]) -> set[str]:
    """The ``bundles`` modules named in the configs (``bundles.sat.inferer.TextPromptedInferer`` -> its module)."""
    modules = set()
    for name in (m for config in configs for s in _strings(config) for m in _NAME.findall(s)):
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = PACKAGE.parent.joinpath(*parts[:end])
            if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
                modules.add(".".join(parts[:end]))
                break
    return modules


def needed_files(configs: list[dict[str, Any]]) -> list[Path]:
    """Every file of ``bundles/`` the configs reach: the named modules, what they import (transitively), the
    ``__init__.py`` of each package on the way, and the data files (non-Python) of those packages."""
    finder = modulefinder.ModuleFinder(path=[str(REPO_ROOT)])
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "entry.py"
        script.write_text("".join(f"import {m}\n" for m in sorted(_named_modules(configs))))
        finder.run_script(str(script))
    files = {Path(m.__file__) for name, m in finder.modules.items() if name.split(".")[0] == "bundles" and m.__file__}
    packages = {f.parent for f in files}
    for folder in list(packages):
        while folder != PACKAGE.parent and folder.is_relative_to(PACKAGE):
            files.add(folder / "__init__.py")
            folder = folder.parent
    data = {p for folder in packages for p in _data_files(folder)}
    return sorted(f for f in files | data if f.is_file())


def _data_files(package: Path) -> list[Path]:
    """Files of ``package`` that are not Python, with those of its sub-folders that are not packages."""
    found = []
    for path in package.iterdir():
        if path.is_file() and path.suffix not in (".py", ".pyc"):
            found.append(path)
        elif path.is_dir() and path.name != "__pycache__" and not (path / "__init__.py").exists():
            found += [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return found


def exact_versions() -> dict[str, str]:
    """The installed version of every dependency ``pyproject.toml`` declares for the project."""
    declared = importlib.metadata.requires("medseg-bundles") or []
    names = [re.split(r"[\s<>=~!;\[]", r, maxsplit=1)[0] for r in declared if "extra ==" not in r]
    return {n: importlib.metadata.version(n) for n in sorted(names, key=str.lower)}


def run(bundle: str, output: str, model_dir: str | None = None) -> str:
    """Write the zip of ``bundle`` (``sat_nano``, ``sat_pro``, ``sam_med3d``, ``samed_lora``, ``sam_unet``).

    Args:
        bundle: the bundle folder's name.
        output: the zip file to write (replaced).
        model_dir: a folder of weights (``model.pt`` ...) to ship in ``models/``; none by default.
    """
    if bundle not in BUNDLES:
        raise SystemExit(f"error: unknown bundle {bundle!r}; choose one of {sorted(BUNDLES)}")
    source = REPO_ROOT / bundle
    if model_dir is not None and not (Path(model_dir) / "model.pt").is_file():
        raise SystemExit(f"error: {model_dir}: no model.pt there; pass the folder that holds the weights")
    configs = {p.name: json.loads(p.read_text()) for p in sorted((source / "configs").glob("*.json"))}
    code = needed_files(list(configs.values()))
    configs["metadata.json"]["required_packages_version"] = {
        k: v for k, v in exact_versions().items() if k not in ("torch", "monai", "numpy")}
    for name in ("pytorch", "monai", "numpy"):
        configs["metadata.json"][f"{name}_version"] = importlib.metadata.version("torch" if name == "pytorch" else name)
    for name, config in configs.items():
        if "imports" in config:
            config["imports"] = ["$import scripts", *config["imports"]]
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, config in configs.items():
            archive.writestr(f"{bundle}/configs/{name}", json.dumps(config, indent=4) + "\n")
        for extra in sorted(p for p in (source / "configs").iterdir() if p.suffix != ".json"):
            archive.write(extra, f"{bundle}/configs/{extra.name}")
        for path in sorted(p for p in (source / "docs").rglob("*") if p.is_file()):
            archive.write(path, f"{bundle}/{path.relative_to(source)}")
        archive.write(source / "LICENSE", f"{bundle}/LICENSE")
        archive.writestr(f"{bundle}/scripts/__init__.py", SCRIPTS_INIT)
        for path in code:
            archive.write(path, f"{bundle}/scripts/{path.relative_to(REPO_ROOT)}")
        if model_dir is not None:
            for path in sorted(p for p in Path(model_dir).rglob("*") if p.is_file()):
                archive.write(path, f"{bundle}/models/{path.relative_to(model_dir)}")
    shutil.move(tmp, out)
    print(f"{out}: {len(code)} files of bundles/ vendored, {len(configs)} configs")
    return str(out)


if __name__ == "__main__":
    fire.Fire({"run": run})
