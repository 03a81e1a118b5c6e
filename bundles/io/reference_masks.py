"""Reference label maps compared in world coordinates.

A reference mask may be stored on another grid than the image (patient B's mask is LAS-indexed beside an
LPS series); it is always brought onto the image grid through the affines, never by index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike

import numpy as np
import torch

from bundles.errors import BundleInputError
from bundles.io.grid import ImageGrid
from bundles.io.readers import read_image
from bundles.io.resample import resample_to_grid

__all__ = ["load_reference_masks", "masks_from_label_map", "values_by_term"]


def values_by_term(legend: Mapping[int, str]) -> dict[str, list[int]]:
    """Invert a legend (label value -> term) into term -> label values (several values may share a term)."""
    values_of: dict[str, list[int]] = {}
    for value, term in legend.items():
        values_of.setdefault(term, []).append(int(value))
    return values_of


def load_reference_masks(
    path: str | PathLike, legend: Mapping[int, str], terms: Sequence[str], grid: ImageGrid
) -> np.ndarray:
    """Binary masks ``(len(terms), *grid.shape)`` for ``terms`` from the label map at ``path``.

    ``legend`` maps label values of the file to terms; a term absent from the legend raises, a term whose
    label value does not occur in the file gives an empty mask (a real "absent" reference).

    Raises:
        BundleInputError: unreadable file, or a term the legend does not name.
    """
    labels, label_grid = read_image(path)
    return masks_from_label_map(labels, label_grid, legend, terms, grid, path)


def masks_from_label_map(
    labels: torch.Tensor, label_grid: ImageGrid, legend: Mapping[int, str], terms: Sequence[str], grid: ImageGrid,
    path: str | PathLike,
) -> np.ndarray:
    """:func:`load_reference_masks` of a label map already read (``labels`` ``(1, x, y, z)`` on ``label_grid``);
    ``path`` names it in errors."""
    values_of = values_by_term(legend)
    missing = [t for t in terms if t not in values_of]
    if missing:
        raise BundleInputError(path, f"the legend names no label for {missing}; it has {sorted(values_of)}")
    label_values = labels[0].round().to(torch.int64)
    out = np.zeros((len(terms), *grid.shape), dtype=bool)
    for i, term in enumerate(terms):
        mask = torch.zeros_like(label_values, dtype=torch.float32)
        for value in values_of[term]:
            mask[label_values == value] = 1.0
        on_grid = resample_to_grid(mask[None], label_grid.affine, grid, mode="nearest")
        out[i] = np.asarray(on_grid[0] > 0.5)
    return out
