"""SAT in MONAI Label: text prompts per request, as OHIF's class picker or any client sends them.

``label_prompt``: indices into the task's ``labels`` (SAT's vocabulary, CT terms first, then MR and PET
terms, numbered from 1), as OHIF v3 sends them; ``prompts``: free vocabulary terms or their synonyms
(``["liver", "IVC"]``); ``modality``: ``ct`` (default), ``mri`` or ``pet``. Unknown terms or indices are
refused by SAT's own prompt check (422).

The answer's values are 1..K in prompt order, except for OHIF v3: its client sends ``restore_label_idx: false``
with every request and maps each voxel value as an index of the model's ``labels`` (``MonaiLabelPanel.updateView``),
so a request with ``restore_label_idx`` false and only ``label_prompt`` classes is answered in those indices
(``label_names`` says so), as the NRRD it asks for (:mod:`bundles.serving.answer_file`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bundles.engines.loaded_bundle import LoadedBundle
from bundles.errors import PromptError
from bundles.networks.sat.modality_rows import MODALITY_ROWS
from bundles.serving import request_values
from bundles.serving.infer_task import CaseInfer
from bundles.serving.limits import RequestLimits

__all__ = ["TextInfer", "infer_task"]


class TextInfer(CaseInfer):
    """SAT's MONAI Label task: ``labels`` is the vocabulary (name -> index from 1)."""

    def __init__(self, served: LoadedBundle, limits: RequestLimits):
        vocabulary = served.value("vocabulary")
        names = list(dict.fromkeys(t for m in MODALITY_ROWS for t in vocabulary.terms(m)))
        super().__init__(served, type="segmentation", labels={name: i + 1 for i, name in enumerate(names)}, dimension=3,
                         description=f"{served.bundle}: text-prompted segmentation of {len(names)} structures (CT, MR, PET)",
                         limits=limits)
        self.by_index = {i + 1: name for i, name in enumerate(names)}
        self.by_name = {name: i + 1 for i, name in enumerate(names)}

    @staticmethod
    def answers_in_indices(request: Mapping[str, Any]) -> bool:
        """Whether the answer's values are the ``labels`` indices of its classes (OHIF's requests: see the module
        docstring) rather than 1..K."""
        return request.get("restore_label_idx") is False and not request.get("prompts")

    def answer_values(self, request: Mapping[str, Any], names: Sequence[str]) -> list[int] | None:
        """OHIF's requests are answered in the classes' ``labels`` indices (module docstring), others 1..K."""
        if self.answers_in_indices(request) and all(n in self.by_name for n in names):
            return [self.by_name[name] for name in names]
        return None

    def case_fields(self, request: Mapping[str, Any]) -> dict[str, Any]:
        prompts = request_values.strings(request, "prompts")
        indices = request_values.indices(request, "label_prompt")
        self.limits.check_prompts(len(prompts) + len(indices))
        for index in indices:
            if index not in self.by_index:
                raise PromptError(f"label_prompt {index} is not an index of this model's labels (1 .. {len(self.by_index)})")
            if index > 255 and self.answers_in_indices(request) and request.get("result_extension") == ".nrrd" \
                    and request.get("result_dtype") != "uint16":
                raise PromptError(f"label_prompt {index} ({self.by_index[index]}): an answer in uint8 (OHIF's label map) holds"
                                  " label indices up to 255 only; ask for this class by name ('prompts') or from 3D Slicer")
            prompts.append(self.by_index[index])
        return {"prompts": prompts, "modality": request_values.text(request, "modality", "ct")}


def infer_task(served: LoadedBundle, conf: Mapping[str, str]) -> TextInfer:
    """The task of the app (``conf``: the server's options, for the request bounds)."""
    return TextInfer(served, RequestLimits.from_conf(conf))
