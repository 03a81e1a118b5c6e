"""One bundle loaded for repeated use: its own inference configs parsed once, each component built on first
use, the weights checked before the first component that needs them.

The server keeps one per served model; :func:`bundles.segment` and :func:`bundles.open_session` make one per
call. The settings are the caller's (``model_dir``, ``device``, config ids), never a request's: a request's
values go to the components (the prompt check, the predictor, the session) as data.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from bundles.bundle_configs import parse_inference
from bundles.checkpoints.release import check_model_files

__all__ = ["LoadedBundle"]

#: Components that run before any weights are needed (a typo in a prompt costs a second, not a model load).
NO_WEIGHTS = frozenset({"prompt_check"})


class LoadedBundle:
    """The inference components of ``bundle`` with the weights in ``model_dir``.

    Args:
        bundle: a bundle folder name (``sat_nano``, ``sam_med3d``, ...).
        model_dir: folder with ``model.pt`` (and ``training.json`` for models trained here, whose overlays are
            applied); ``None``: the bundle's ``models/`` (converted official weights).
        device: ``auto``, ``cpu`` or ``cuda:N``.
        settings: other config ids of ``configs/inference.json`` (``keep_largest_component=True``, ...).

    Raises:
        ConfigurationError: an unknown bundle or a setting that is no config id of it.
        CheckpointError (from :meth:`component`): the weights are missing or do not match (named), on the
            first use of a component that needs them.
    """

    def __init__(self, bundle: str, model_dir: str | PathLike | None = None, device: str = "auto",
                 settings: Mapping[str, Any] | None = None):
        self.bundle = bundle
        self.model_dir = None if model_dir is None else Path(model_dir)
        self.device = device
        self.parser = parse_inference(bundle, self.model_dir, device=device, **{"progress": False, **dict(settings or {})})
        self._checked = False
        self._lock = threading.Lock()  # components are built once, whichever caller comes first
        self.model_lock = threading.Lock()  # one prediction at a time in the model (CPU threads or one GPU)

    def value(self, key: str) -> Any:
        """A plain value of the parsed configs (``img_size``, ``class_names``, ...)."""
        return self.parser.get_parsed_content(key)

    def has(self, key: str) -> bool:
        """Whether the configs define ``key`` (``session`` for click bundles)."""
        return key in self.parser

    def check_weights(self) -> None:
        """Raises CheckpointError naming every missing weights file and how to get them (nothing is loaded)."""
        check_model_files(self.value("model_files"), self.value("model_dir"), self.value("how_to_get_weights"))

    def ensure_weights(self) -> None:
        """:meth:`check_weights` the first time only (the release check reads every file's checksum)."""
        with self._lock:
            if not self._checked:
                self.check_weights()
                self._checked = True

    def component(self, key: str) -> Any:
        """A component of the configs (``prompt_check``, ``predictor``, ``session``), built once; the weights
        are checked before the first one that needs them (every one but :data:`NO_WEIGHTS`)."""
        if key not in NO_WEIGHTS:
            self.ensure_weights()
        with self._lock:
            return self.parser.get_parsed_content(key)
