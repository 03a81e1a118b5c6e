"""What a set of this repository's modules needs: the files they reach by import, and the installed
distributions (with versions) of everything else they import. Read from the source with ``ast`` (every
``import`` counts, the ones inside functions too); nothing is imported or run.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ImportClosure", "import_closure", "installed_versions"]

#: The distribution this repository installs as (its ``bundles`` package is vendored, never a requirement).
PROJECT = "medseg-bundles"


@dataclass
class ImportClosure:
    """``files``: the ``.py`` files of the local package reached; ``external``: the top-level names of every
    other non-standard-library module they import (``numpy``, ``PIL``, ...)."""

    files: set[Path] = field(default_factory=set)
    external: set[str] = field(default_factory=set)


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _imported_names(path: Path, package: list[str]) -> list[str]:
    """Every module name ``path`` imports (``from a import b`` gives ``a`` and ``a.b``: ``b`` may be a module);
    relative imports resolved against ``package``."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*anchor, *([node.module] if node.module else [])])
            names += [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
    return names


def import_closure(modules: Iterable[str], root: Path, local: str = "bundles") -> ImportClosure:
    """The closure of ``modules`` (dotted names of package ``local`` under ``root``) under import.

    Importing a module runs its parent packages' ``__init__.py`` first, so those are followed too. A name that
    is no module of ``local`` (``from bundles.x import function``) is skipped.
    """
    closure, todo, seen = ImportClosure(), list(modules), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(root, name)
        if path is None:
            continue
        closure.files.add(path)
        parts = name.split(".")
        todo += [".".join(parts[:end]) for end in range(1, len(parts))]
        for imported in _imported_names(path, parts if path.name == "__init__.py" else parts[:-1]):
            top = imported.split(".")[0]
            if top == local:
                todo.append(imported)
            elif top and top not in sys.stdlib_module_names:
                closure.external.add(top)
    return closure


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions(top_level_names: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Installed distribution -> version for the import names, split by what the project declares.

    A name several distributions provide (``itk``: itk-core, itk-io, ...) maps to the ones the project
    declares, else to all of them. Names no installed distribution provides are left out.

    Returns:
        ``(required, optional)``: distributions among the project's dependencies, and the others (imported only
        by code behind an extra, e.g. the MONAI Label server's ``monailabel``).
    """
    declared = importlib.metadata.requires(PROJECT) or []
    base = {_canonical(re.split(r"[\s<>=~!;\[]", r, maxsplit=1)[0]) for r in declared if "extra ==" not in r}
    providers = importlib.metadata.packages_distributions()
    required: dict[str, str] = {}
    optional: dict[str, str] = {}
    for name in sorted(top_level_names):
        found = sorted({d for d in providers.get(name, []) if _canonical(d) != PROJECT})
        chosen = [d for d in found if _canonical(d) in base]
        for dist in chosen or found:
            (required if chosen else optional)[dist] = importlib.metadata.version(dist)
    return dict(sorted(required.items(), key=lambda kv: kv[0].lower())), dict(sorted(optional.items(), key=lambda kv: kv[0].lower()))
