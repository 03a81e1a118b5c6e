"""SAM-Med3D's evaluation protocol (official ``validation.py``, the paper's numbers): for every object of
every case, a 128³ window centred on the object's bounding box (torchio's rule) on the 1.5 mm grid;
simulated clicks, seeded (``ritm`` for clicks 1 and 2, ``random`` after, placed on the error of the
previous prediction); each click decoded alone with the previous low-res logits; the Dice after each click
in the window (as the paper reports) and on the whole input volume (the mask put back on the input grid).
Each case's final masks (after the last click) are written on the input grid under ``<output_dir>/<case>/``
with the clicks in ``clicks.json`` (RAS mm and window voxels), so a figure can show them.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from tqdm import tqdm

from bundles.errors import BundleInputError
from bundles.io.atomic import atomic_write_json
from bundles.io.cases import parse_cases
from bundles.io.modality import normalize_modality
from bundles.io.readers import read_image
from bundles.io.resample import resample_to_grid
from bundles.io.writers import write_segmentation
from bundles.metrics.click_report import write_click_report
from bundles.metrics.segmentation import dice
from bundles.precision import autocast
from bundles.progress import show_progress
from bundles.sam_med3d.clicks import PRED_LOGIT_THRESHOLD, random_click, ritm_click
from bundles.sam_med3d.preprocessing import box_window_start, crop_or_pad, to_model_grid
from bundles.sam_med3d.session import ClickSession

__all__ = ["ClickEvaluation", "RITM_CLICKS"]

logger = logging.getLogger(__name__)

#: Clicks placed by the ``ritm`` rule before the ``random`` one takes over (official ``validation.py``).
RITM_CLICKS = 2


class ClickEvaluation:
    """Dice after 1..``num_clicks`` simulated clicks for every (case, object).

    Args:
        session: a :class:`ClickSession` (its network, device, precision and model grid).
        data: case list (``.jsonl``) or ``input_dict`` with ``mask`` + ``legend`` per case.
        output_dir: where ``clicks.csv``, ``clicks.md`` and ``dice_vs_clicks.png`` go.
        num_clicks: clicks per object (official default 5).
        seed: click simulation seed (official 2023); each (case, object) gets its own stream.
        classes: evaluate only these legend names (default: all).
        progress: progress bar over objects.
    """

    def __init__(
        self,
        session: ClickSession,
        data: str | PathLike | Mapping[str, Any],
        output_dir: str | PathLike,
        num_clicks: int = 5,
        seed: int = 2023,
        classes: list[str] | None = None,
        progress: bool = True,
    ) -> None:
        self.session = session
        self.input_dict = data if isinstance(data, Mapping) else {"cases": str(data)}
        self.output_dir = Path(output_dir)
        self.num_clicks = num_clicks
        self.seed = seed
        self.classes = classes
        self.progress = progress

    def run(self) -> list[dict[str, Any]]:
        """Evaluate every case; write and return the rows.

        Raises:
            BundleInputError: a case without ``mask``/``legend``, or no object to evaluate at all.
        """
        rows: list[dict[str, Any]] = []
        cases = parse_cases(self.input_dict)
        for case in cases:
            if case.mask is None or not case.legend:
                raise BundleInputError(case.image, "evaluation needs 'mask' (reference label map) and 'legend' (value -> name)")
        for case in tqdm(cases, desc="cases", unit="case", disable=not show_progress(self.progress)):
            rows.extend(self._case(case))
        paths = write_click_report(rows, self.output_dir, title=f"SAM-Med3D: Dice after each of {self.num_clicks} clicks")
        logger.info("click evaluation: %s", {k: str(v) for k, v in paths.items()})
        print(paths["markdown"].read_text(encoding="utf-8"))
        return rows

    def _case(self, case) -> list[dict[str, Any]]:
        image, grid = read_image(case.image, frame=case.frame)
        reference, ref_grid = read_image(case.mask)
        on_grid = resample_to_grid(reference, ref_grid.affine, grid, mode="nearest")[0].round()
        modality = normalize_modality(case.modality) if case.modality else None
        self.session.set_image(image[0], grid, modality)
        labels = to_model_grid(MetaTensor(on_grid[None], affine=image.affine.clone()), self.session.spacing, mode="nearest")
        labels = labels.as_tensor()[0].round()
        rows, masks, names, clicks = [], [], [], {}
        for value, name in sorted(case.legend.items()):
            if self.classes is not None and name not in self.classes:
                continue
            if not bool((labels == value).any()):
                logger.warning("%s: %r (label %d) is not in the reference mask on the model grid; skipped", case.id, name, value)
                continue
            object_rows, mask = self._object(case.id, name, value, labels == value, on_grid.numpy() == value)
            rows.extend(object_rows)
            masks.append(mask)
            names.append(name)
            clicks[name] = [{"world_mm": r["world_mm"], "window_voxel": r["voxel"], "positive": r["positive"]} for r in object_rows]
        if masks:
            folder = self.output_dir / case.id
            write_segmentation(np.stack(masks), names, grid, folder, provenance={"clicks": self.num_clicks, "click_seed": self.seed})
            atomic_write_json(folder / "clicks.json", clicks)
        return rows

    def _object(
        self, case_id: str, name: str, value: int, model_mask: torch.Tensor, volume_mask: np.ndarray
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Rows of one object (one per click) and its final mask on the input grid."""
        session, size = self.session, self.session.size
        start = box_window_start(model_mask.numpy(), size)
        gt = crop_or_pad(model_mask[None].float(), start, size)[0].numpy() > 0
        embedding = session.window_embedding(start)
        rng = np.random.default_rng([self.seed, zlib.crc32(case_id.encode()), value])
        device = session.device
        low, upsampled = None, torch.zeros((1, 1, size, size, size))
        rows = []
        for click in range(1, self.num_clicks + 1):
            pick = ritm_click if click <= RITM_CLICKS else random_click
            voxel, label = pick(upsampled[0, 0].numpy() > PRED_LOGIT_THRESHOLD, gt, rng)
            point = torch.as_tensor(voxel, dtype=torch.float32, device=device).view(1, 1, 3)
            with torch.no_grad(), autocast(device, session.amp):
                low = session.network.decode(embedding, point, torch.tensor([[label]], device=device), low)
            low = low.float()
            upsampled = F.interpolate(low, size=(size,) * 3, mode="trilinear", align_corners=False).cpu()
            volume = session.to_grid(session.probabilities(low), session.window_affine(start), session.grid)[0]
            rows.append({
                "case": case_id, "class": name, "click": click,
                "dice_window": dice(upsampled[0, 0].numpy() > 0, gt), "dice_volume": dice(volume, volume_mask),
                "voxel": [int(v) for v in voxel], "positive": bool(label),
                "world_mm": [round(float(c), 3) for c in (session.window_affine(start) @ np.append(voxel, 1.0))[:3]],
            })
        return rows, volume
