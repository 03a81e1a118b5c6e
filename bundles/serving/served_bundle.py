"""One bundle as the server holds it: its own inference configs parsed once, the model loaded on first use.

The settings are the server's (``model_dir``, ``device``), never a request's: a request's values go to the
components (the prompt check, the predictor, the session) as data.
"""

from __future__ import annotations

import threading
from os import PathLike
from pathlib import Path
from typing import Any

from bundles.bundle_configs import parse_inference
from bundles.checkpoints.release import check_model_files

__all__ = ["ServedBundle"]


class ServedBundle:
    """The inference components of ``bundle`` with the weights in ``model_dir``.

    Args:
        bundle: a bundle folder name (``sat_nano``, ``sam_med3d``, ...).
        model_dir: folder with ``model.pt`` (and ``training.json`` for models trained here); ``None``: the
            bundle's ``models/`` (converted official weights).
        device: ``auto``, ``cpu`` or ``cuda:N``.

    Raises (from :meth:`component`):
        CheckpointError: the weights are missing or do not match (named), on the first use.
    """

    def __init__(self, bundle: str, model_dir: str | PathLike | None = None, device: str = "auto"):
        self.bundle = bundle
        self.model_dir = None if model_dir is None else Path(model_dir)
        self.device = device
        self.parser = parse_inference(bundle, self.model_dir, device=device, progress=False)
        self._checked = False
        self._lock = threading.Lock()  # components are built once, whichever request comes first
        self.model_lock = threading.Lock()  # one request at a time in the model (CPU threads or one GPU)

    def value(self, key: str) -> Any:
        """A plain value of the parsed configs (``img_size``, ``class_names``, ...)."""
        return self.parser.get_parsed_content(key)

    def check_weights(self) -> None:
        """Raises CheckpointError naming every missing weights file and how to get them (nothing is loaded)."""
        check_model_files(self.value("model_files"), self.value("model_dir"), self.value("how_to_get_weights"))

    def component(self, key: str) -> Any:
        """A component of the configs (``prompt_check``, ``predictor``, ``session``), built once; the weights
        are checked before the first one is built."""
        with self._lock:
            if not self._checked:
                self.check_weights()
                self._checked = True
            return self.parser.get_parsed_content(key)
