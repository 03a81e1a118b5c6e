"""Box and point prompts from masks (SAM-UNet takes its boxes from the largest connected component of the
reference mask, with a random shift during training), in SAM's (x, y) convention: x along the last axis."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["largest_component", "box_from_mask", "jitter_box", "random_point"]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a 2D mask (the mask itself when it has one or none)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def box_from_mask(mask: np.ndarray) -> np.ndarray | None:
    """(H, W) mask -> box (x_min, y_min, x_max, y_max) of its largest component, in pixels; ``None`` if empty."""
    component = largest_component(mask)
    rows, cols = np.nonzero(component)
    if rows.size == 0:
        return None
    return np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=np.float32)


def jitter_box(box: np.ndarray, max_shift: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each coordinate by up to min(max_shift, half the box's shorter side) pixels, kept in [0, size - 1]
    and ordered (SAM-UNet's training shift: at most 5 pixels)."""
    limit = min(max_shift, 0.5 * float(min(box[2] - box[0], box[3] - box[1])))
    moved = box + rng.uniform(-limit, limit, size=4)
    moved = np.clip(moved, 0, size - 1)
    x0, x1 = sorted((moved[0], moved[2]))
    y0, y1 = sorted((moved[1], moved[3]))
    return np.array([x0, y0, x1, y1], dtype=np.float32)


def random_point(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random foreground pixel (x, y) of a non-empty (H, W) mask."""
    rows, cols = np.nonzero(mask)
    i = int(rng.integers(rows.size))
    return np.array([cols[i], rows[i]], dtype=np.float32)
