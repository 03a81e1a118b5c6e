"""The core names no family, by import or by string: what a module could import at run time (``importlib``,
``runpy``, a MONAI ``_target_``) is a string, so every string of the core's code and every module path in its
JSON data is read, not only its import statements (``tests/test_core_toy_family.py`` checks those).

The families are the network packages (``bundles/networks/<f>/``) and the bundle folders; their glue
(``bundles/<f>/``) and networks are where their names belong. Docstrings may name a family as an example.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bundles.bundle_configs import BUNDLES

REPO = Path(__file__).resolve().parents[1]
FAMILIES = sorted(p.name for p in (REPO / "bundles" / "networks").iterdir() if (p / "__init__.py").is_file())
NAMES = sorted(set(FAMILIES) | set(BUNDLES))
#: Any family or bundle name as a word (in the core's code strings).
NAMED = re.compile(r"\b(" + "|".join(map(re.escape, NAMES)) + r")\b")
#: A module path into a family (in the core's JSON data, whose prose may cite a family's data as a source).
MODULE_PATH = re.compile(r"\bbundles\.(networks\.)?(" + "|".join(map(re.escape, FAMILIES)) + r")\b")
FAMILY_DIRS = tuple(f"bundles/{f}/" for f in FAMILIES) + ("bundles/networks/",)


def _core_files(suffix: str) -> list[Path]:
    return [p for p in sorted((REPO / "bundles").rglob(f"*{suffix}"))
            if not p.relative_to(REPO).as_posix().startswith(FAMILY_DIRS)]


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(node.body[0].value) for node in ast.walk(tree) if isinstance(node, kinds) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def code_strings_naming_a_family(source: str) -> list[str]:
    """The string constants of ``source`` (docstrings aside) that name a family or a bundle."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in skip and NAMED.search(node.value)]


def test_the_families_are_found():
    assert {"sat", "sam_med3d", "samed", "sam_unet"} <= set(FAMILIES) and "sat_nano" in NAMES


def test_the_check_sees_a_family_named_in_a_string():
    assert code_strings_naming_a_family('"""Docs may say sat_nano."""\nimportlib.import_module("bundles.sat.serving")\n') == ["bundles.sat.serving"]
    assert code_strings_naming_a_family('TABLE = {"samed_lora": 1}') == ["samed_lora"]
    assert code_strings_naming_a_family('x = "saturation"') == []


@pytest.mark.parametrize("path", _core_files(".py"), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_core_module_names_a_family_in_its_code(path):
    assert code_strings_naming_a_family(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", _core_files(".json"), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_core_data_file_points_into_a_family(path):
    assert MODULE_PATH.findall(path.read_text(encoding="utf-8")) == []
