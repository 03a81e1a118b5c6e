"""Which config files the ``monai.bundle run`` in progress was given, and their merged raw content.

MONAI's config expressions cannot refer to the config itself, yet a trained model folder should say how it
was made (and a run should know whether a checkpoint belongs to it). ``monai.bundle.scripts.run`` holds both
the ``config_file`` argument and the workflow whose parser has the merged config (overrides applied), so
they are read from that call's frame. Outside a bundle run (plain Python) there is no invocation.
"""

from __future__ import annotations

import ast
import copy
import inspect
from dataclasses import dataclass
from typing import Any

__all__ = ["BundleInvocation", "current_invocation"]


@dataclass(frozen=True)
class BundleInvocation:
    """The bundle run in progress.

    Attributes:
        config_files: the config files as given (``configs/train.json``, ``configs/demo.json``, ...).
        config: the merged raw config (``$`` expressions and ``@`` references unevaluated), overrides applied.
    """

    config_files: tuple[str, ...]
    config: dict[str, Any]

    def card(self) -> dict[str, Any]:
        """``{"config_files": [...], "config": {...}}`` for the ``training.json`` beside an exported model."""
        return {"config_files": list(self.config_files), "config": self.config}


def _as_list(config_file: Any) -> tuple[str, ...]:
    if isinstance(config_file, str):
        text = config_file.strip()
        if text.startswith("["):  # the CLI passes "['a.json','b.json']" as one string
            try:
                return tuple(str(f) for f in ast.literal_eval(text))
            except (ValueError, SyntaxError):
                return (text,)
        return (text,)
    return tuple(str(f) for f in (config_file or ()))


def current_invocation() -> BundleInvocation | None:
    """The :class:`BundleInvocation` of the enclosing ``monai.bundle`` run, or ``None`` outside one."""
    from monai.bundle import scripts

    frame = inspect.currentframe()
    try:
        while frame is not None:
            if frame.f_code is scripts.run.__code__:
                workflow = frame.f_locals.get("workflow")
                parser = getattr(workflow, "parser", None)
                config = copy.deepcopy(parser.config) if parser is not None else {}
                config = {k: v for k, v in config.items() if not str(k).startswith("_meta_")}
                return BundleInvocation(_as_list(frame.f_locals.get("config_file")), config)
            frame = frame.f_back
        return None
    finally:
        del frame
