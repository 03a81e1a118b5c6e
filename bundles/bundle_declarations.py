"""What a bundle declares about itself in its ``configs/inference.json``, read as plain JSON (no MONAI, no torch),
so the console can check a command in well under a second before any model library loads.

As MONAI's ``bundle/properties.py`` names the ids a workflow needs, these are the ids every bundle defines
as plain values (``tests/test_bundle_hooks.py`` checks each bundle)::

    "prompt_kinds": ["text"],                 # any of "text", "clicks", "boxes"; [] for a prompt-free model
    "weights_files": ["model.pt", "text_encoder.pt"],   # the files the job loads, inside model_dir
    "how_to_get_weights": "convert the official weights with ...",
    "converter": "bundles.<family>.convert",  # the module that prepares the weights (python -m ...)
    "example": "medseg segment ct.nii.gz -o out --bundle <bundle> --prompts liver",
    "prompt_vocabulary": "bundles.<family>.vocabulary:load_vocabulary"  # text bundles only: module:callable

No list of bundles is kept anywhere: :func:`bundles.bundle_configs.discover_bundles` finds the folders.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bundles.bundle_configs import bundle_dir
from bundles.errors import ConfigurationError

__all__ = ["PROMPT_KINDS", "BundleDeclaration", "declaration", "load_vocabulary"]

#: The kinds of prompt a bundle may take: text terms, clicks (points with 1/0 labels), boxes.
PROMPT_KINDS = ("text", "clicks", "boxes")


@dataclass(frozen=True)
class BundleDeclaration:
    """A bundle's declared ids (module docstring).

    Attributes:
        name: the bundle folder name.
        folder: the bundle folder.
        prompt_kinds: subset of :data:`PROMPT_KINDS`; empty for a prompt-free model.
        weights_files: file names inside the model folder that the job loads.
        how_to_get_weights: one sentence telling how to get them.
        converter: the module run by ``python -m <converter>`` (``medseg convert``) to prepare the weights.
        example: one ``medseg segment`` command for this bundle.
        prompt_vocabulary: ``module:callable`` returning the text bundle's vocabulary, or ``None``.
    """

    name: str
    folder: Path
    prompt_kinds: tuple[str, ...]
    weights_files: tuple[str, ...]
    how_to_get_weights: str
    converter: str
    example: str
    prompt_vocabulary: str | None

    def missing_weights(self, model_dir: str | Path | None) -> list[Path]:
        """The declared weights files absent from ``model_dir`` (default: the bundle's ``models/``), as absolute paths."""
        folder = Path(model_dir) if model_dir is not None else self.folder / "models"
        return [(folder / name).absolute() for name in self.weights_files if not (folder / name).is_file()]


def _plain(config: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = config.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and value.startswith(("$", "@", "%"))):
        raise ConfigurationError(f"{path}: '{key}' must be a plain {kind.__name__} (read without MONAI); got {value!r}")
    return value


@lru_cache(maxsize=None)
def declaration(bundle: str) -> BundleDeclaration:
    """The declared ids of ``bundle``.

    Raises:
        ConfigurationError: unknown bundle, or an id missing or not a plain value of the right type.
    """
    folder = bundle_dir(bundle)
    path = folder / "configs" / "inference.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    kinds = tuple(_plain(config, "prompt_kinds", list, path))
    if any(kind not in PROMPT_KINDS for kind in kinds):
        raise ConfigurationError(f"{path}: 'prompt_kinds' {list(kinds)} may hold only {', '.join(PROMPT_KINDS)}")
    files = tuple(_plain(config, "weights_files", list, path))
    if not files or not all(isinstance(f, str) and f for f in files):
        raise ConfigurationError(f"{path}: 'weights_files' must list the weights file names, got {list(files)}")
    vocabulary = config.get("prompt_vocabulary")
    if ("text" in kinds) != (vocabulary is not None):
        raise ConfigurationError(f"{path}: 'prompt_vocabulary' is declared by text bundles, and only by them")
    return BundleDeclaration(
        name=bundle, folder=folder, prompt_kinds=kinds, weights_files=files,
        how_to_get_weights=_plain(config, "how_to_get_weights", str, path), converter=_plain(config, "converter", str, path),
        example=_plain(config, "example", str, path),
        prompt_vocabulary=None if vocabulary is None else _plain(config, "prompt_vocabulary", str, path),
    )


def load_vocabulary(declared: BundleDeclaration) -> Any:
    """The text bundle's vocabulary object (``terms(modality)``, ``match(prompts, modality, allow_free_text)``).

    Raises:
        ConfigurationError: the bundle takes no text prompts.
    """
    if declared.prompt_vocabulary is None:
        raise ConfigurationError(f"the {declared.name} bundle takes no text prompts, so it has no vocabulary")
    module, _, name = declared.prompt_vocabulary.partition(":")
    return getattr(importlib.import_module(module), name)()
