"""Finding a bundle's folder and the config files a model runs with; running or parsing them from Python.

Every family's one-call API and command line go through here, so they run exactly the bundle's own
``configs/inference.json`` (the same job, checks and outputs as ``python -m monai.bundle run``), plus the
overlays a trained model folder names in its ``training.json`` (e.g. ``configs/demo.json``): a model always
runs with the network settings it was trained with.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import bundles
from bundles.checkpoints.model_card import CARD_NAME, model_overlays, read_model_card
from bundles.errors import ConfigurationError

__all__ = ["BUNDLES", "BUNDLE_PATH_ENV", "discover_bundles", "bundle_folders", "bundle_names", "bundle_dir", "check_bundle_root", "model_overlay_files", "inference_configs", "run_command", "run_inference", "parse_inference"]



#: The repository: the bundle folders beside the ``bundles`` package.
_REPOSITORY = Path(bundles.__file__).resolve().parent.parent

#: Environment variable: more folders holding bundle folders (``os.pathsep``-separated), searched after the
#: repository's; a bundle kept outside the repository (your own family's) is found through it.
BUNDLE_PATH_ENV = "MEDSEG_BUNDLE_PATH"


def discover_bundles(root: str | PathLike | None = None) -> tuple[str, ...]:
    """The bundle folders in ``root`` (default: beside the ``bundles`` package): the folders holding
    ``configs/metadata.json``, sorted by name. A new bundle is found by being there; no list to edit."""
    root = Path(root) if root is not None else _REPOSITORY
    return tuple(sorted(p.parent.parent.name for p in root.glob("*/configs/metadata.json")))


def bundle_folders() -> dict[str, Path]:
    """Every bundle found now: the repository's, then those in the folders of :data:`BUNDLE_PATH_ENV`.

    Raises:
        ConfigurationError: two bundle folders of the same name.
    """
    roots = [_REPOSITORY, *(Path(p) for p in os.environ.get(BUNDLE_PATH_ENV, "").split(os.pathsep) if p)]
    found: dict[str, Path] = {}
    for root in roots:
        for name in discover_bundles(root):
            if name in found and found[name] != root / name:
                raise ConfigurationError(f"{root / name}: a bundle named {name!r} is also at {found[name]}; rename one")
            found[name] = root / name
    return found


def bundle_names() -> tuple[str, ...]:
    """The names of :func:`bundle_folders`, sorted."""
    return tuple(sorted(bundle_folders()))


#: The repository's bundles at import time (what tests parametrize over); running code calls :func:`bundle_names`.
BUNDLES = discover_bundles()


def bundle_dir(bundle: str) -> Path:
    """The folder of a bundle (``sat_nano``, ...).

    Raises:
        ConfigurationError: unknown bundle, or its folder is missing (a wheel install without the repository).
    """
    folders = bundle_folders()
    if bundle not in folders:
        raise ConfigurationError(f"unknown bundle {bundle!r}; choose one of {', '.join(sorted(folders))}")
    folder = folders[bundle]
    if not (folder / "configs" / "inference.json").is_file():
        raise ConfigurationError(f"{folder}: bundle folder not found; install the repository with pip install -e .")
    return folder


def check_bundle_root(bundle_root: str | PathLike, config: str = "inference.json") -> None:
    """Refuse a ``bundle_root`` that is not a bundle folder: the first thing a bundle's job checks, so a command
    run from the wrong folder says so instead of looking for weights in ``<wrong folder>/models``.

    Raises:
        ConfigurationError: ``bundle_root/configs/<config>`` does not exist, with the fix.
    """
    root = Path(bundle_root)
    if not (root / "configs" / config).is_file():
        inside = sorted(p.parent.parent.name for p in root.glob(f"*/configs/{config}"))
        here = f" (bundle folders here: {', '.join(inside)})" if inside else ""
        raise ConfigurationError(f"{root.absolute()}: bundle_root is not a bundle folder (no configs/{config}); pass --bundle_root "
                                 f"with the folder of the bundle whose configs you run{here}, or run the command from inside it")


def model_overlay_files(bundle: str, model_dir: str | PathLike | None) -> list[str]:
    """The overlays recorded in ``<model_dir>/training.json`` (the settings a model was trained with), as
    paths: relative ones are in the bundle's folder. ``[]`` without a model card.

    Raises:
        ConfigurationError: the model card names a config that is not there.
    """
    root = bundle_dir(bundle)
    files = []
    for name in model_overlays(read_model_card(model_dir) if model_dir is not None else None):
        path = Path(name) if Path(name).is_absolute() else root / name
        if not path.is_file():
            raise ConfigurationError(f"{Path(model_dir) / CARD_NAME}: names the config {name}, which is not in {root}")
        files.append(str(path))
    return files


def inference_configs(bundle: str, model_dir: str | PathLike | None) -> list[str]:
    """``configs/inference.json`` of ``bundle`` plus the overlays recorded in ``<model_dir>/training.json``.

    Raises:
        ConfigurationError: the model card names a config that is not in the bundle.
    """
    return [str(bundle_dir(bundle) / "configs" / "inference.json"), *model_overlay_files(bundle, model_dir)]


def run_command(configs: Sequence[str], overrides: Mapping[str, Any]) -> list[str]:
    """The command line ``python -m monai.bundle run`` of ``configs`` with ``--key value`` overrides (strings
    as they are, other values as Python literals, which MONAI's command line parses back)."""
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(list(configs))]
    for key, value in overrides.items():
        command += [f"--{key}", value if isinstance(value, str) else repr(value)]
    return command


def _parsed(bundle: str, model_dir: str | PathLike | None, settings: Mapping[str, Any]):
    """The bundle's inference configs parsed with ``settings`` as config ids, after checking that each one is an
    id the configs define (a misspelt option would otherwise be added silently and change nothing).

    Raises:
        ConfigurationError: a setting that is no config id, with the closest ids.
    """
    from monai.bundle import ConfigParser

    resolved = {"bundle_root": str(bundle_dir(bundle)), **settings}
    if model_dir is not None:
        resolved["model_dir"] = str(Path(model_dir).resolve())
    configs = inference_configs(bundle, resolved.get("model_dir"))
    parser = ConfigParser()
    parser.read_config(configs)
    for key in settings:
        if key.split("#")[0] not in parser:  # "network_def#img_size" sets an argument of an existing component
            close = difflib.get_close_matches(key, [k for k in parser.config if isinstance(k, str)], n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ConfigurationError(f"{configs[0]}: {key!r} is not an option of the {bundle} bundle{hint}")
    parser.update(resolved)
    return configs, resolved, parser


def run_inference(bundle: str, model_dir: str | PathLike | None, **settings: Any) -> None:
    """``python -m monai.bundle run`` of the bundle's inference configs with ``settings`` as config ids.

    Raises:
        ConfigurationError: a setting that is no config id of the bundle.
        BundleError: the project's own error (bad input, prompts, weights) that stopped the run, unwrapped from
            the ``RuntimeError`` MONAI's config parser puts around it.
    """
    from monai.bundle import run

    from bundles.errors import find_bundle_error

    configs, resolved, _ = _parsed(bundle, model_dir, settings)
    hook = sys.excepthook  # the configs install the command line's one-line error printer; a library call keeps the caller's
    try:
        run(config_file=configs, **resolved)
    except Exception as error:  # noqa: BLE001 - MONAI wraps our errors in RuntimeError: give callers the named one
        named = find_bundle_error(error)
        if named is None:
            raise
        raise named from error
    finally:
        sys.excepthook = hook


def parse_inference(bundle: str, model_dir: str | PathLike | None, **settings: Any):
    """The bundle's inference configs parsed (``monai.bundle.ConfigParser``) with ``settings`` as config ids,
    for a caller that takes single components (the predictor, the prompt check) instead of running the job.

    Raises:
        ConfigurationError: a setting that is no config id of the bundle.
    """
    return _parsed(bundle, model_dir, settings)[2]
