"""What one request may ask of the server: the bounds, their defaults and the one-line refusals.

The bounds are server options (``tools.serve --max_clicks ...``, MONAI Label ``--conf max_clicks N``), never
request values. A request over a bound is refused before any work with a 4xx naming the option, so an
annotator or an administrator knows what to change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from bundles.errors import ConfigurationError, PromptError

__all__ = ["RequestLimits", "request_params"]


@dataclass(frozen=True)
class RequestLimits:
    """The server's bounds on one request (see the module docstring).

    Attributes:
        workers: requests computed at once (worker threads beside the event loop); more wait their turn.
        max_clicks: clicks (points, foreground and background voxels together) in one inference request.
        max_prompts: text prompts (free terms and ``label_prompt`` indices together) in one inference request.
        max_train_steps: ``max_steps`` one ``/train`` request may ask for.
        max_trainings: trainings running at once (``/train`` with ``run_sync``; MONAI Label's background
            trainings already run one at a time).
    """

    workers: int = 2
    max_clicks: int = 64
    max_prompts: int = 32
    max_train_steps: int = 5000
    max_trainings: int = 1

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> RequestLimits:
        """The bounds of MONAI Label's ``--conf`` values (strings); absent ones keep their defaults.

        Raises:
            ConfigurationError: a bound that is not an integer >= 1.
        """
        values = {}
        for f in fields(cls):
            raw = conf.get(f.name)
            if raw is None:
                continue
            try:
                values[f.name] = int(str(raw))
            except ValueError:
                values[f.name] = 0
            if values[f.name] < 1:
                raise ConfigurationError(f"{f.name} (server option --{f.name}) must be an integer of at least 1, got {raw!r}")
        return cls(**values)

    def check_clicks(self, count: int) -> None:
        """Raises PromptError when ``count`` clicks exceed :attr:`max_clicks`."""
        if count > self.max_clicks:
            raise PromptError(f"{count} clicks in one request; this server takes at most {self.max_clicks} (server option --max_clicks)")

    def check_prompts(self, count: int) -> None:
        """Raises PromptError when ``count`` prompts exceed :attr:`max_prompts`."""
        if count > self.max_prompts:
            raise PromptError(f"{count} prompts in one request; this server takes at most {self.max_prompts} (server option --max_prompts)")

    def check_train_steps(self, steps: Any) -> None:
        """Raises PromptError when ``steps`` is an integer above :attr:`max_train_steps` (its type is checked
        by the train task)."""
        if isinstance(steps, int) and not isinstance(steps, bool) and steps > self.max_train_steps:
            raise PromptError(f"max_steps {steps} is more than this server trains in one request ({self.max_train_steps};"
                              " server option --max_train_steps)")


def request_params(text: str | None, field: str = "params") -> dict[str, Any]:
    """A request's JSON form field (``params``, ``info``) as a dict. (A field over 1 MiB never gets here:
    Starlette's form parser refuses it with 400.)

    Raises:
        PromptError: not JSON, or JSON but not an object.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise PromptError(f"{field} is not valid JSON ({e.msg} at character {e.pos})") from e
    if not isinstance(value, dict):
        raise PromptError(f"{field} must be a JSON object ({{...}}), got {type(value).__name__}")
    return value
