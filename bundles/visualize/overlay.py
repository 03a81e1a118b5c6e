"""Overlay figures: predicted and reference contours on axial and coronal slices, radiological convention.

:func:`save_overlay_figure` draws arrays; :mod:`bundles.visualize.case_overlay` reads a case folder written by
the bundle and draws it with this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bundles.errors import ConfigurationError
from bundles.io.atomic import atomic_write
from bundles.io.grid import ImageGrid

__all__ = ["DEFAULT_CT_WINDOW", "SliceViews", "to_ras", "radiological", "slice_views", "save_overlay_figure", "display_window"]

DEFAULT_CT_WINDOW = (-160.0, 240.0)
"""Soft-tissue abdominal CT window in HU (level 40, width 400), a common radiology default."""


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient ``array`` ``(..., X, Y, Z)`` to the closest RAS+ voxel axes (flips and permutations only).

    Returns:
        ``(array_ras, affine_ras)`` where ``affine_ras`` maps the new voxel indices to the same RAS mm.
    """
    transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(affine), nib.orientations.axcodes2ornt("RAS"))
    spatial = array.shape[-3:]
    moved = np.moveaxis(array, (-3, -2, -1), (0, 1, 2))
    ras = np.moveaxis(nib.orientations.apply_orientation(moved, transform), (0, 1, 2), (-3, -2, -1))
    return ras, affine @ nib.orientations.inv_ornt_aff(transform, spatial)


def radiological(section: np.ndarray) -> np.ndarray:
    """Display array of a section indexed ``(x, v)`` with x towards the patient's Right and v towards Anterior
    (axial) or Superior (coronal): rows run from high v to low v (anterior/superior at the top), columns from
    high x to low x (patient's right on the viewer's left)."""
    return np.ascontiguousarray(section.T[::-1, ::-1])


@dataclass(frozen=True)
class SliceViews:
    """The two display sections of a figure, already in radiological layout (row 0 at the top).

    Attributes:
        axial, coronal: image sections ``(rows, cols)``.
        pred_axial, pred_coronal, ref_axial, ref_coronal: bool ``(Q, rows, cols)`` (ref ones None without ref).
        axial_aspect, coronal_aspect: pixel height / width for ``imshow``.
        axial_index, coronal_index: slice indices in the RAS-reoriented volume (z and y).
        affine_ras, shape_ras: voxel -> RAS mm affine and shape of the RAS-reoriented volume.
    """

    axial: np.ndarray
    coronal: np.ndarray
    pred_axial: np.ndarray
    pred_coronal: np.ndarray
    ref_axial: np.ndarray | None
    ref_coronal: np.ndarray | None
    axial_aspect: float
    coronal_aspect: float
    axial_index: int
    coronal_index: int
    affine_ras: np.ndarray
    shape_ras: tuple[int, int, int]

    def display_position(self, world: Sequence[float]) -> tuple[tuple[float, float], tuple[float, float], np.ndarray]:
        """World point (RAS mm) -> (column, row) on the axial and on the coronal panel, and its RAS voxel."""
        v = (np.linalg.inv(self.affine_ras) @ np.append(np.asarray(world, dtype=float), 1.0))[:3]
        nx, ny, nz = self.shape_ras
        return (nx - 1 - v[0], ny - 1 - v[1]), (nx - 1 - v[0], nz - 1 - v[2]), v


def _centre(masks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Centre of mass (voxel indices) of the largest mask; the volume centre if all are empty."""
    counts = masks.reshape(masks.shape[0], -1).sum(axis=1) if masks.size else np.zeros(0)
    if counts.size == 0 or counts.max() == 0:
        return (np.asarray(shape) - 1) // 2
    return np.rint(np.argwhere(masks[int(np.argmax(counts))]).mean(axis=0)).astype(int)


def slice_views(image: np.ndarray, grid: ImageGrid, pred: np.ndarray, ref: np.ndarray | None = None) -> SliceViews:
    """Axial and coronal sections through the centre of the largest predicted structure (of the reference
    if nothing is predicted), from the RAS-reoriented volume, in radiological layout.

    Args:
        image: ``(X, Y, Z)`` on ``grid``; pred, ref: bool ``(Q, X, Y, Z)`` on ``grid``.

    Raises:
        ValueError: shapes do not match ``grid``.
    """
    image, pred = np.asarray(image), np.asarray(pred, dtype=bool)
    if image.shape != grid.shape or pred.shape[1:] != grid.shape or (ref is not None and np.shape(ref) != pred.shape):
        raise ValueError(
            f"image {image.shape}, pred {pred.shape} and ref {None if ref is None else np.shape(ref)} must lie on the grid {grid.shape}"
        )
    image_ras, affine_ras = to_ras(image, grid.affine)
    pred_ras = to_ras(pred, grid.affine)[0]
    ref_ras = None if ref is None else to_ras(np.asarray(ref, dtype=bool), grid.affine)[0]
    centre_source = pred_ras if pred_ras.any() or ref_ras is None else ref_ras
    _, y, z = _centre(centre_source, image_ras.shape)
    sx, sy, sz = np.linalg.norm(affine_ras[:3, :3], axis=0)

    def axial(a: np.ndarray) -> np.ndarray:
        return radiological(a[..., z]) if a.ndim == 3 else np.stack([radiological(m[..., z]) for m in a])

    def coronal(a: np.ndarray) -> np.ndarray:
        return radiological(a[:, y, :]) if a.ndim == 3 else np.stack([radiological(m[:, y, :]) for m in a])

    return SliceViews(
        axial=axial(image_ras), coronal=coronal(image_ras),
        pred_axial=axial(pred_ras), pred_coronal=coronal(pred_ras),
        ref_axial=None if ref_ras is None else axial(ref_ras), ref_coronal=None if ref_ras is None else coronal(ref_ras),
        axial_aspect=float(sy / sx), coronal_aspect=float(sz / sx), axial_index=int(z), coronal_index=int(y),
        affine_ras=affine_ras, shape_ras=tuple(int(n) for n in image_ras.shape),
    )


CONTOUR_COLORS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")
"""matplotlib's default cycle without its grey (C7), which cannot be seen on a grey CT; one per class, in order."""


def _contours(ax, masks: np.ndarray, colors: list, style: str) -> None:
    for mask, color in zip(masks, colors):
        if mask.any() and not mask.all():
            ax.contour(mask.astype(np.float32), levels=[0.5], colors=[color], linestyles=style, linewidths=1.2)


def save_overlay_figure(
    image: np.ndarray,
    grid: ImageGrid,
    pred: np.ndarray,
    ref: np.ndarray | None,
    names: Sequence[str],
    path: str | PathLike,
    *,
    window: tuple[float, float] | None = DEFAULT_CT_WINDOW,
    title: str | None = None,
    clicks: Sequence[tuple[int, Sequence[float], bool]] = (),
) -> Path:
    """Write a PNG with an axial and a coronal slice through the centre of the largest predicted structure.

    The volume is reoriented to RAS first, so the figure is right way up whatever the file orientation, and
    shown in radiological convention (patient's right on the viewer's left, anterior/superior at the top).
    Predictions are solid contours, references dashed, one colour per position in ``names`` (the same organ
    has the same colour in every figure of a job); the legend names those with any predicted or reference voxel.

    Args:
        image: ``(X, Y, Z)`` on ``grid`` (HU for CT).
        grid: the image grid.
        pred: bool ``(Q, X, Y, Z)``; ref: bool ``(Q, X, Y, Z)`` or None.
        names: ``Q`` class names.
        path: output PNG, written atomically.
        window: display range (default the CT soft-tissue window in HU); None uses the 1st-99th percentiles
            (for MR).
        title: figure title; default names the source file.
        clicks: ``(mask index, RAS mm point, positive)`` per click, drawn in the mask's colour on both panels
            (projected): ``+`` positive, ``x`` negative; large when within half a voxel of the section.

    Raises:
        ValueError: shapes do not match ``grid`` or ``len(names) != Q``.
    """
    pred = np.asarray(pred, dtype=bool)
    if len(names) != pred.shape[0]:
        raise ValueError(f"{pred.shape[0]} predicted masks but {len(names)} names")
    views = slice_views(image, grid, pred, ref)
    low, high = window if window is not None else np.percentile(np.asarray(image), [1, 99])
    colors = [CONTOUR_COLORS[q % len(CONTOUR_COLORS)] for q in range(len(names))]
    figure = Figure(figsize=(11, 5.8), layout="constrained")
    panels = (
        (f"axial (z index {views.axial_index})", views.axial, views.pred_axial, views.ref_axial, views.axial_aspect, ("A", "P")),
        (f"coronal (y index {views.coronal_index})", views.coronal, views.pred_coronal, views.ref_coronal, views.coronal_aspect, ("S", "I")),
    )
    for ax, (label, section, pred2d, ref2d, aspect, (top, bottom)) in zip(figure.subplots(1, 2), panels):
        ax.imshow(section, cmap="gray", vmin=low, vmax=high, aspect=aspect, interpolation="nearest")
        _contours(ax, pred2d, colors, "solid")
        if ref2d is not None:
            _contours(ax, ref2d, colors, "dashed")
        for index, world, positive in clicks:
            axial_xy, coronal_xy, voxel = views.display_position(world)
            axis, section = (2, views.axial_index) if label.startswith("axial") else (1, views.coronal_index)
            near = abs(voxel[axis] - section) <= 0.5
            ax.plot(*(axial_xy if axis == 2 else coronal_xy), marker="+" if positive else "x", color=colors[index],
                    markersize=11 if near else 6, markeredgewidth=2.2 if near else 1.2, linestyle="none")
        ax.set_title(label)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("R  <- patient ->  L")
        ax.set_ylabel(f"{bottom}  <- patient ->  {top}")
    present = pred.reshape(len(names), -1).any(axis=1)
    if ref is not None:
        present |= np.asarray(ref, dtype=bool).reshape(len(names), -1).any(axis=1)
    handles = [Line2D([], [], color=c, lw=2, label=n) for n, c, p in zip(names, colors, present) if p]
    handles.append(Line2D([], [], color="k", lw=1.2, ls="solid", label="prediction"))
    if ref is not None:
        handles.append(Line2D([], [], color="k", lw=1.2, ls="dashed", label="reference"))
    if clicks:
        handles.append(Line2D([], [], color="k", marker="+", ls="none", label="positive click"))
        handles.append(Line2D([], [], color="k", marker="x", ls="none", label="negative click"))
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=8)
    source = Path(grid.source)
    figure.suptitle(title or f"{source.parent.name}/{source.name}: prediction (solid)" + (" vs reference (dashed)" if ref is not None else ""))
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))


def display_window(window: str | Sequence[float] | None) -> tuple[float, float] | None:
    """The display range for :func:`save_overlay_figure` from a user's choice.

    ``"ct"`` gives :data:`DEFAULT_CT_WINDOW` (HU); ``"percentile"`` or None gives None (the image's 1st-99th
    percentiles, for MR); two numbers ``(low, high)`` are taken as they are (image units).

    Raises:
        ConfigurationError: anything else, or ``low >= high``.
    """
    if window is None or (isinstance(window, str) and window.strip().lower() == "percentile"):
        return None
    if isinstance(window, str):
        if window.strip().lower() == "ct":
            return DEFAULT_CT_WINDOW
        raise ConfigurationError(f'display window {window!r}: use "ct", "percentile" or two numbers (low, high)')
    values = tuple(window)
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigurationError(f'display window {window!r}: use "ct", "percentile" or two numbers (low, high)')
    low, high = float(values[0]), float(values[1])
    if not low < high:
        raise ConfigurationError(f"display window ({low}, {high}): the low end must be below the high end")
    return low, high
