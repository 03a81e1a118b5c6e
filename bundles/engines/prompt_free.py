"""The prompt check of prompt-free models (SAMed): a case must not carry prompts."""

from __future__ import annotations

from typing import Any

from bundles.errors import PromptError
from bundles.io.cases import Case

__all__ = ["NoPrompts"]


class NoPrompts:
    """:class:`bundles.engines.segmentation_job.PromptCheck` of a model that segments a fixed set of classes.

    Args:
        model_name: named in the error.
        classes: what the model segments, listed in the error so the user sees why prompts are not needed.
    """

    def __init__(self, model_name: str, classes: list[str] | tuple[str, ...] = ()):
        self.model_name = model_name
        self.classes = list(classes)

    def __call__(self, case: Case) -> None:
        """Raises:
            PromptError: the case has prompts (names the image and the prompts)."""
        if case.prompts:
            listed = f" ({', '.join(self.classes)})" if self.classes else ""
            raise PromptError(
                f"{case.image}: {self.model_name} takes no prompts, it segments its classes{listed} on every image; "
                f"got prompts {case.prompts!r}: drop them"
            )

    def report_columns(self, name: str, prompts: Any) -> dict[str, Any]:
        return {}
