"""SAM-Med3D's side of the click evaluation (:class:`bundles.interactive.evaluation.ClickEvaluation`), as its
official ``validation.py`` (the paper's numbers) does it: every object gets a 128³ window centred on its
bounding box (torchio's rule) on the 1.5 mm model grid; each click is decoded alone with the previous
low-res logits; the next click is placed on the upsampled logits > :data:`PRED_LOGIT_THRESHOLD`, the
window's mask (what the Dice in the window scores) is the upsampled probabilities > 0.5, and the mask on
the input grid is the session's own.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bundles.interactive.evaluation import WindowClick
from bundles.io.labelled_case import LabelledCase
from bundles.precision import autocast
from bundles.sam_med3d.clicks import PRED_LOGIT_THRESHOLD
from bundles.sam_med3d.preprocessing import box_window_start, to_model_grid
from bundles.sam_med3d.session import SAMMed3DSession
from bundles.transforms.window_crop import crop_window

__all__ = ["BoxCentredWindows"]


class _Window:
    """One object's window (a :class:`bundles.interactive.evaluation.ClickWindow`): its image embedding is
    computed once, each click decoded with the previous low-res logits."""

    def __init__(self, session: SAMMed3DSession, model_mask: torch.Tensor) -> None:
        self.session = session
        self.start = box_window_start(model_mask.numpy(), session.size)
        self.reference = crop_window(model_mask[None].float(), self.start, session.size)[0].numpy() > 0
        self.affine = session.window_affine(self.start)
        self.embedding = session.window_embedding(self.start)
        self.low_res: torch.Tensor | None = None

    def click(self, voxel: np.ndarray, positive: bool) -> WindowClick:
        session, size, device = self.session, self.session.size, self.session.device
        point = torch.as_tensor(voxel, dtype=torch.float32, device=device).view(1, 1, 3)
        with torch.no_grad(), autocast(device, session.amp):
            low = session.network.decode(self.embedding, point, torch.tensor([[int(positive)]], device=device), self.low_res)
        self.low_res = low.float()
        upsampled = F.interpolate(self.low_res, size=(size,) * 3, mode="trilinear", align_corners=False).cpu()[0, 0].numpy()
        volume = session.to_grid(session.probabilities(self.low_res), self.affine, session.grid)[0]
        return WindowClick(upsampled > PRED_LOGIT_THRESHOLD, upsampled > 0, volume)


class BoxCentredWindows:
    """The :class:`bundles.interactive.evaluation.ClickWindows` of SAM-Med3D (see the module doc).

    Args:
        session: a :class:`SAMMed3DSession` (its network, device, precision and model grid).
    """

    def __init__(self, session: SAMMed3DSession) -> None:
        self.session = session
        self.labels: torch.Tensor | None = None

    def set_case(self, case: LabelledCase, modality: str | None) -> None:
        """The image into the session; the label map onto the model grid (nearest)."""
        self.session.set_image(case.image[0], case.grid, modality)
        self.labels = to_model_grid(case.labels, self.session.spacing, mode="nearest").as_tensor()[0].round()

    def window(self, value: int) -> _Window | None:
        """The window of label ``value``; None when it is absent on the model grid."""
        assert self.labels is not None, "set_case first"
        model_mask = self.labels == value
        return _Window(self.session, model_mask) if bool(model_mask.any()) else None
