"""Export a bundle as a self-contained zip: configs, docs, LICENSE, the code it needs, exact versions, weights.

    python -m tools.export_bundle run --bundle samed_lora --output dist/samed_lora.zip [--model_dir models/]

The zip holds one folder named after the bundle, laid out as a MONAI model-zoo bundle:

- ``configs/`` (every config of the bundle; each config's ``imports`` starts with ``$import scripts``),
  ``docs/``, ``LICENSE``;
- ``scripts/bundles/``: the modules of this repository's ``bundles`` package that the configs reach
  (found by following the imports of every ``bundles.*`` name the configs mention, package data included;
  :mod:`tools.import_closure`), and ``scripts/__init__.py``, which puts ``scripts/`` on ``sys.path`` so the
  configs' ``bundles.*`` names resolve to that copy;
- ``configs/metadata.json`` with ``required_packages_version`` set to the exact versions installed here of
  the packages those modules and the configs import (and the project declares; torch, MONAI and numpy have
  their own ``*_version`` entries), and ``extra_packages_version`` for the packages imported only by code
  behind the project's extras (the MONAI Label task: install them to serve the bundle);
- ``models/``: the files of ``--model_dir`` when given; without it the zip holds no weights (said in a
  warning line).

Run it from the unzipped bundle folder, in an environment holding only those packages:
``python -m monai.bundle run --config_file configs/inference.json --input_dict ...`` (``python -m`` puts the
current folder first on ``sys.path``, which is how ``scripts`` is found).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import fire

from bundles.bundle_configs import BUNDLES
from tools.import_closure import ImportClosure, import_closure, installed_versions

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
_IMPORT = re.compile(r"(?:^|[\s$;])(?:import|from)\s+([A-Za-z_]\w*)")
#: Packages metadata.json records in their own entries (``pytorch_version``, ...), not in ``required_packages_version``.
_OWN_ENTRIES = {"pytorch": "torch", "monai": "monai", "numpy": "numpy"}


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


def code_closure(configs: list[dict[str, Any]]) -> ImportClosure:
    """The ``bundles`` modules the configs reach, and the top-level names of everything else that they and the
    configs import (``import`` in ``$`` expressions, dotted ``_target_`` names), the standard library left out."""
    closure = import_closure(_named_modules(configs), REPO_ROOT)
    for config in configs:
        for text in (t for t in _strings(config) if t.startswith("$")):
            closure.external.update(_IMPORT.findall(text))
        closure.external.update(t.split(".")[0] for t in _targets(config) if "." in t)
    closure.external -= {"bundles", *sys.stdlib_module_names}
    return closure


def _targets(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        return own + [t for v in node.values() for t in _targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


def needed_files(closure: ImportClosure) -> list[Path]:
    """Every file of ``bundles/`` to vendor: the modules of the closure (with the ``__init__.py`` of each
    package on the way) and the data files (non-Python) of their packages."""
    files = set(closure.files)
    packages = {f.parent for f in files}
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
    closure = code_closure(list(configs.values()))
    code = needed_files(closure)
    required, extra = installed_versions(closure.external - set(_OWN_ENTRIES.values()))
    configs["metadata.json"]["required_packages_version"] = required
    configs["metadata.json"]["extra_packages_version"] = extra
    for entry, dist in _OWN_ENTRIES.items():
        configs["metadata.json"][f"{entry}_version"] = importlib.metadata.version(dist)
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
    print(f"{out}: {len(code)} files of bundles/ vendored, {len(configs)} configs, requires {', '.join(required) or 'nothing else'}")
    if model_dir is None:
        print(f"warning: {out} holds no weights (no --model_dir given): put them in {bundle}/models/ after unzipping, "
              "or export again with --model_dir", file=sys.stderr)
    return str(out)


if __name__ == "__main__":
    fire.Fire({"run": run})
