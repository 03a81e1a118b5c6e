"""Every bundle names the module that prepares its weights (``converter`` in ``configs/inference.json``); that
module runs as ``python -m <converter>`` and through its ``main(argv) -> int``, and ``--help`` explains every
option of every command."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

from bundles.bundle_configs import BUNDLES

REPO = Path(__file__).resolve().parents[1]


def _converter(bundle: str) -> str:
    return json.loads((REPO / bundle / "configs" / "inference.json").read_text())["converter"]


def _commands(module) -> dict[str, object]:
    """Subcommand (None: the default command) -> function, as the module's ``main`` hands them to fire."""
    if hasattr(module, "COMMANDS"):
        return dict(module.COMMANDS)
    default = next(getattr(module, n) for n in ("convert", "init") if hasattr(module, n))
    return {None: default, **({"export": module.export} if hasattr(module, "export") else {})}


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_each_bundle_names_its_converter_and_its_help_explains_every_option(bundle, capsys):
    name = _converter(bundle)
    assert name == f"bundles.{name.split('.')[1]}.convert"
    module = importlib.import_module(name)
    for command, function in _commands(module).items():
        argv = ["--help"] if command is None else [command, "--help"]
        assert module.main(argv) == 0
        shown = capsys.readouterr().err  # fire prints help on stderr
        for option in inspect.signature(function).parameters:
            assert f"--{option}" in shown or option.upper() in shown, (name, command, option)
        described = inspect.getdoc(function).split("Args:")[1]
        assert all(f"{option}:" in described for option in inspect.signature(function).parameters), (name, command)


def test_a_usage_error_is_an_exit_status_not_an_exception(capsys):
    module = importlib.import_module(_converter("sam_med3d"))
    assert module.main([]) == 2  # --checkpoint missing
    assert "checkpoint" in capsys.readouterr().err.lower()
