"""Dice after each simulated click, for any click model: for every object of every case, clicks simulated
on the error of the previous prediction, seeded per (case, object) (:mod:`bundles.interactive.simulation`:
``ritm`` for the first ``ritm_clicks`` clicks, ``random`` after), each decoded by the model in the object's
window; the Dice after each click in the window and on the whole input volume (the mask on the input grid).
Each case's final masks (after the last click) are written on the input grid under ``<output_dir>/<case>/``
with the clicks in ``clicks.json`` (RAS mm and window voxels), so a figure can show them.

The model's side is a :class:`ClickWindows`: where an object's window lies (e.g. centred on its bounding
box, as an official protocol says), how a click is decoded there, and which prediction the next click is
placed against.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
from tqdm import tqdm

from bundles.interactive.simulation import random_click, ritm_click
from bundles.io.atomic import atomic_write_json
from bundles.io.cases import Case, parse_cases
from bundles.io.labelled_case import LabelledCase, check_labelled, read_labelled_case
from bundles.io.modality import normalize_modality
from bundles.io.writers import write_segmentation
from bundles.metrics.click_report import write_click_report
from bundles.metrics.segmentation import dice
from bundles.progress import show_progress

__all__ = ["WindowClick", "ClickWindow", "ClickWindows", "ClickEvaluation"]

logger = logging.getLogger(__name__)


class WindowClick(NamedTuple):
    """What one click gave: ``placing`` and ``window`` bool arrays of the window's shape (the prediction the
    next click is placed against, and the mask scored in the window; a model may place clicks on another
    threshold than its masks, as its training did), ``volume`` the bool mask (X, Y, Z) on the input grid."""

    placing: np.ndarray
    window: np.ndarray
    volume: np.ndarray


class ClickWindow(Protocol):
    """One object's window: ``reference`` the object in it (bool, the window's shape), ``affine`` its voxel
    -> RAS mm matrix (4, 4); each :meth:`click` refines the object's prediction."""

    reference: np.ndarray
    affine: np.ndarray

    def click(self, voxel: np.ndarray, positive: bool) -> WindowClick:
        """Decode a click at window voxel ``voxel`` (inside the object when ``positive``)."""
        ...


class ClickWindows(Protocol):
    """The model's side of the evaluation: one case at a time, one window per object."""

    def set_case(self, case: LabelledCase, modality: str | None) -> None:
        """Prepare a case: its image and reference label map on the image's grid, ``modality`` canonical or None."""
        ...

    def window(self, value: int) -> ClickWindow | None:
        """The window of the object of label ``value``; None when the model does not see it (skipped)."""
        ...


class ClickEvaluation:
    """Dice after 1..``num_clicks`` simulated clicks for every (case, object).

    Args:
        windows: the model's side (:class:`ClickWindows`).
        data: case list (``.jsonl``) or ``input_dict`` with ``mask`` + ``legend`` per case.
        output_dir: where ``clicks.csv``, ``clicks.md`` and ``dice_vs_clicks.png`` go.
        model: the model's name in the report's title.
        num_clicks: clicks per object.
        seed: click simulation seed; each (case, object) gets its own stream.
        ritm_clicks: clicks placed by the ``ritm`` rule before the ``random`` one takes over.
        classes: evaluate only these legend names (default: all).
        progress: progress bar over cases.
    """

    def __init__(
        self,
        windows: ClickWindows,
        data: str | PathLike | Mapping[str, Any],
        output_dir: str | PathLike,
        model: str,
        num_clicks: int = 5,
        seed: int = 2023,
        ritm_clicks: int = 2,
        classes: list[str] | None = None,
        progress: bool = True,
    ) -> None:
        self.windows = windows
        self.input_dict = data if isinstance(data, Mapping) else {"cases": str(data)}
        self.output_dir = Path(output_dir)
        self.model = model
        self.num_clicks = num_clicks
        self.seed = seed
        self.ritm_clicks = ritm_clicks
        self.classes = classes
        self.progress = progress

    def run(self) -> list[dict[str, Any]]:
        """Evaluate every case; write and return the rows (``case``, ``class``, ``click``, ``dice_window``,
        ``dice_volume``, window ``voxel``, ``positive``, ``world_mm``).

        Raises:
            BundleInputError: a case without ``mask``/``legend``, an unusable image or label map
                (:func:`~bundles.io.labelled_case.read_labelled_case`), or no object to evaluate at all.
        """
        rows: list[dict[str, Any]] = []
        cases = parse_cases(self.input_dict)
        for case in cases:
            check_labelled(case, "evaluation")
        for case in tqdm(cases, desc="cases", unit="case", disable=not show_progress(self.progress)):
            rows.extend(self._case(case))
        paths = write_click_report(rows, self.output_dir, title=f"{self.model}: Dice after each of {self.num_clicks} clicks")
        logger.info("click evaluation: %s", {k: str(v) for k, v in paths.items()})
        print(paths["markdown"].read_text(encoding="utf-8"))
        return rows

    def _case(self, case: Case) -> list[dict[str, Any]]:
        labelled = read_labelled_case(case, "evaluation")
        modality = normalize_modality(case.modality) if case.modality else None
        self.windows.set_case(labelled, modality)
        labels = labelled.labels[0].numpy()
        rows, masks, names, clicks = [], [], [], {}
        for value, name in sorted(case.legend.items()):
            if self.classes is not None and name not in self.classes:
                continue
            window = self.windows.window(value)
            if window is None:
                logger.warning("%s: %r (label %d) is not in the reference mask on the model grid; skipped", case.id, name, value)
                continue
            rng = np.random.default_rng([self.seed, zlib.crc32(case.id.encode()), value])
            object_rows, mask = self._object(case.id, name, window, labels == value, rng)
            rows.extend(object_rows)
            masks.append(mask)
            names.append(name)
            clicks[name] = [{"world_mm": r["world_mm"], "window_voxel": r["voxel"], "positive": r["positive"]} for r in object_rows]
        if masks:
            folder = self.output_dir / case.id
            write_segmentation(np.stack(masks), names, labelled.grid, folder, provenance={"clicks": self.num_clicks, "click_seed": self.seed})
            atomic_write_json(folder / "clicks.json", clicks)
        return rows

    def _object(
        self, case_id: str, name: str, window: ClickWindow, volume_mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Rows of one object (one per click) and its final mask on the input grid."""
        placing, volume = np.zeros_like(window.reference), np.zeros_like(volume_mask)
        rows = []
        for click in range(1, self.num_clicks + 1):
            pick = ritm_click if click <= self.ritm_clicks else random_click
            voxel, label = pick(placing, window.reference, rng)
            placing, in_window, volume = window.click(voxel, bool(label))
            rows.append({
                "case": case_id, "class": name, "click": click,
                "dice_window": dice(in_window, window.reference), "dice_volume": dice(volume, volume_mask),
                "voxel": [int(v) for v in voxel], "positive": bool(label),
                "world_mm": [round(float(c), 3) for c in (window.affine @ np.append(voxel, 1.0))[:3]],
            })
        return rows, volume
