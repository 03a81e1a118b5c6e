"""Finding a bundle's folder and the config files a model runs with; running or parsing them from Python.

Every family's one-call API and command line go through here, so they run exactly the bundle's own
``configs/inference.json`` (the same job, checks and outputs as ``python -m monai.bundle run``), plus the
overlays a trained model folder names in its ``training.json`` (e.g. ``configs/demo.json``): a model always
runs with the network settings it was trained with.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import bundles
from bundles.checkpoints.model_card import CARD_NAME, model_overlays, read_model_card
from bundles.errors import ConfigurationError

__all__ = ["BUNDLES", "bundle_dir", "inference_configs", "run_inference", "parse_inference"]

#: The bundle folders this package drives (beside the package in the repository).
BUNDLES = ("sat_nano", "sat_pro", "sam_med3d", "samed_lora", "sam_unet")


def bundle_dir(bundle: str) -> Path:
    """The folder of a bundle (``sat_nano``, ...).

    Raises:
        ConfigurationError: unknown bundle, or its folder is missing (a wheel install without the repository).
    """
    if bundle not in BUNDLES:
        raise ConfigurationError(f"unknown bundle {bundle!r}; choose one of {', '.join(BUNDLES)}")
    folder = Path(bundles.__file__).resolve().parent.parent / bundle
    if not (folder / "configs" / "inference.json").is_file():
        raise ConfigurationError(f"{folder}: bundle folder not found; install the repository with pip install -e .")
    return folder


def inference_configs(bundle: str, model_dir: str | PathLike | None) -> list[str]:
    """``configs/inference.json`` of ``bundle`` plus the overlays recorded in ``<model_dir>/training.json``.

    Raises:
        ConfigurationError: the model card names a config that is not in the bundle.
    """
    root = bundle_dir(bundle)
    configs = [str(root / "configs" / "inference.json")]
    for name in model_overlays(read_model_card(model_dir) if model_dir is not None else None):
        path = Path(name) if Path(name).is_absolute() else root / name
        if not path.is_file():
            raise ConfigurationError(f"{Path(model_dir) / CARD_NAME}: names the config {name}, which is not in {root}")
        configs.append(str(path))
    return configs


def _settings(bundle: str, model_dir: str | PathLike | None, settings: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    resolved = {"bundle_root": str(bundle_dir(bundle)), **settings}
    if model_dir is not None:
        resolved["model_dir"] = str(Path(model_dir).resolve())
    return inference_configs(bundle, resolved.get("model_dir")), resolved


def run_inference(bundle: str, model_dir: str | PathLike | None, **settings: Any) -> None:
    """``python -m monai.bundle run`` of the bundle's inference configs with ``settings`` as config ids.

    Raises:
        BundleError: the project's own error (bad input, prompts, weights) that stopped the run, unwrapped from
            the ``RuntimeError`` MONAI's config parser puts around it.
    """
    from monai.bundle import run

    from bundles.errors import find_bundle_error

    configs, resolved = _settings(bundle, model_dir, settings)
    try:
        run(config_file=configs, **resolved)
    except Exception as error:  # noqa: BLE001 - MONAI wraps our errors in RuntimeError: give callers the named one
        named = find_bundle_error(error)
        if named is None:
            raise
        raise named from error


def parse_inference(bundle: str, model_dir: str | PathLike | None, **settings: Any):
    """The bundle's inference configs parsed (``monai.bundle.ConfigParser``) with ``settings`` as config ids,
    for a caller that takes single components (the predictor, the prompt check) instead of running the job."""
    from monai.bundle import ConfigParser

    configs, resolved = _settings(bundle, model_dir, settings)
    parser = ConfigParser()
    parser.read_config(configs)
    parser.update(resolved)
    return parser
