"""Overlay figures: predicted and reference contours on axial and coronal slices, radiological convention.

:func:`save_overlay_figure` draws arrays; :func:`save_case_overlay` draws a case folder written by the bundle
(``seg.nii.gz``, ``masks/<term>.nii.gz``, ``legend.json``; see :func:`bundles.io.writers.write_segmentation`)
over the image it was segmented from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bundles.errors import BundleInputError, ConfigurationError
from bundles.io.atomic import atomic_write
from bundles.io.grid import ImageGrid
from bundles.io.readers import read_image
from bundles.io.reference_masks import load_reference_masks

__all__ = [
    "DEFAULT_CT_WINDOW",
    "SliceViews",
    "CaseMasks",
    "to_ras",
    "radiological",
    "slice_views",
    "save_overlay_figure",
    "load_case_masks",
    "display_window",
    "save_case_overlay",
]

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


_GRID_ATOL_MM = 1e-3
"""Largest affine difference (mm) between a case's mask files and the image still taken as the same grid; the
mask headers are written from the image's grid (float32 in NIfTI), so only rounding separates them."""


@dataclass(frozen=True)
class CaseMasks:
    """The predicted masks of one case folder.

    Attributes:
        names: class names in label order (``seg.nii.gz`` value 1, 2, ...).
        masks: bool ``(Q, X, Y, Z)`` on the grid of the files.
        affine: 4x4 voxel index -> RAS+ mm of the mask files.
        legend: the parsed ``legend.json``.
    """

    names: list[str]
    masks: np.ndarray
    affine: np.ndarray
    legend: dict


def _read_legend(case_dir: Path) -> dict:
    path = case_dir / "legend.json"
    if not path.is_file():
        raise BundleInputError(
            case_dir, "has no legend.json; pass the folder the bundle wrote for one case (<output_dir>/<case id>/)"
        )
    try:
        legend = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleInputError(path, f"cannot be read as JSON ({error}); rerun the segmentation to rewrite it") from error
    if not isinstance(legend, dict) or not isinstance(legend.get("labels"), dict) or not legend["labels"]:
        raise BundleInputError(path, 'has no "labels" mapping (label value -> class name); it was not written by the bundle')
    return legend


def _load_label_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise BundleInputError(path, "is listed in legend.json but missing; rerun the segmentation of this case")
    try:
        image = nib.load(path)
        return np.asanyarray(image.dataobj), np.asarray(image.affine, dtype=np.float64)
    except Exception as error:  # nibabel / gzip raise many types for a damaged file
        raise BundleInputError(path, f"cannot be read as NIfTI ({type(error).__name__}: {error})") from error


def load_case_masks(case_dir: str | PathLike) -> CaseMasks:
    """Read the predicted masks of a case folder written by :func:`bundles.io.writers.write_segmentation`.

    Each class comes from its own ``masks/<term>.nii.gz`` file (``legend.json`` ``"files"``), so overlapping
    masks stay whole; without a ``"files"`` entry the class is the voxels of its value in ``seg.nii.gz``.

    Raises:
        BundleInputError: no or unreadable ``legend.json``, a listed file missing or unreadable, or mask files
            of different shapes or affines.
    """
    case_dir = Path(case_dir)
    legend = _read_legend(case_dir)
    labels = sorted(((int(value), str(name)) for value, name in legend["labels"].items()), key=lambda item: item[0])
    files = legend.get("files") or {}
    seg: tuple[np.ndarray, np.ndarray] | None = None
    masks, affine, first = [], None, None
    for value, name in labels:
        if name in files:
            path = case_dir / files[name]
            data, file_affine = _load_label_file(path)
            mask = np.asarray(data) > 0
        else:
            path = case_dir / legend.get("seg", "seg.nii.gz")
            seg = seg or _load_label_file(path)
            mask, file_affine = np.asarray(seg[0]) == value, seg[1]
        if mask.ndim != 3:
            raise BundleInputError(path, f"holds an array of shape {mask.shape}; expected a 3-D mask")
        if affine is None:
            affine, first = file_affine, path
        elif mask.shape != masks[0].shape or not np.allclose(file_affine, affine, rtol=0, atol=_GRID_ATOL_MM):
            raise BundleInputError(path, f"is not on the grid of {first}; the case folder mixes outputs of different runs")
        masks.append(mask)
    return CaseMasks([name for _, name in labels], np.stack(masks), affine, legend)


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


def _reference_legend(legend: Mapping | str | PathLike | None, case: CaseMasks) -> dict[int, str]:
    """Label value -> class name of the reference label map; default: the case's own ``legend.json`` labels."""
    if legend is None:
        legend = case.legend["labels"]
    elif not isinstance(legend, Mapping):
        path = Path(legend)
        try:
            legend = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BundleInputError(path, f"cannot be read as a JSON legend {{value: class name}} ({error})") from error
        if not isinstance(legend, Mapping):
            raise BundleInputError(path, "must hold a JSON object {label value: class name}")
    try:
        return {int(value): str(name) for value, name in legend.items()}
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"reference legend {dict(legend)!r}: keys must be integer label values") from error


def _recorded_source(case_dir: Path) -> str:
    """The input image path that ``legend.json`` of a case folder records (``source``)."""
    source = json.loads((case_dir / "legend.json").read_text(encoding="utf-8")).get("source")
    if not source:
        raise BundleInputError(case_dir / "legend.json", "records no source image; pass --image")
    return str(source)


def save_case_overlay(
    image: str | PathLike | None,
    case_dir: str | PathLike,
    output: str | PathLike | None = None,
    *,
    reference: str | PathLike | None = None,
    reference_legend: Mapping | str | PathLike | None = None,
    window: str | Sequence[float] | None = "ct",
    title: str | None = None,
    show_empty: bool = False,
) -> Path:
    """Draw ``overlay.png`` for one case folder: axial and coronal slices through the centre of the largest
    predicted mask, predicted contours solid, reference contours (if given) dashed (see
    :func:`save_overlay_figure`).

    Args:
        image: the image the case was segmented from: a NIfTI/NRRD/MHA file or a DICOM series folder; None
            takes the source path recorded in the case's ``legend.json``.
        case_dir: the case folder written by the bundle (``<output_dir>/<case id>/`` with ``legend.json``).
        output: PNG to write; default ``<case_dir>/overlay.png``.
        reference: optional reference label map (any grid: it is resampled onto the image in world
            coordinates, nearest neighbour).
        reference_legend: label value -> class name of ``reference``, as a mapping or a JSON file; default the
            case's ``legend.json`` labels (a reference numbered like ``seg.nii.gz``). Classes it does not name
            get no reference contour.
        window: ``"ct"`` (soft-tissue window, -160..240 HU), ``"percentile"`` (1st-99th percentile, for MR) or
            ``(low, high)`` in image units.
        title: figure title; default names the case folder.
        show_empty: also list classes that are empty in the prediction (and the reference); by default only
            classes with something to draw are shown (all of them when every mask is empty).

    Returns:
        The written PNG path.

    Raises:
        BundleInputError: unreadable image, case folder or reference, or masks not on the image's grid.
        ConfigurationError: a bad ``window`` or ``reference_legend``.
    """
    case_dir = Path(case_dir)
    window_range = display_window(window)
    case = load_case_masks(case_dir)
    if image is None:
        image = _recorded_source(case_dir)
    volume, grid = read_image(image)
    if case.masks.shape[1:] != grid.shape or not np.allclose(case.affine, grid.affine, rtol=0, atol=_GRID_ATOL_MM):
        raise BundleInputError(
            case_dir,
            f"masks of shape {case.masks.shape[1:]} ({''.join(nib.aff2axcodes(case.affine))}) are not on the grid of {image}"
            f" (shape {grid.shape}, {grid.orientation}); pass the image this case was segmented from"
            f" (legend.json names {case.legend.get('source', 'no source')})",
        )
    ref = None
    if reference is not None:
        ref_legend = _reference_legend(reference_legend, case)
        named = set(ref_legend.values())
        scored = [n for n in case.names if n in named]
        ref = np.zeros_like(case.masks)
        if scored:
            loaded = load_reference_masks(reference, ref_legend, scored, grid)
            for name, mask in zip(scored, loaded):
                ref[case.names.index(name)] = mask
    drawn = case.masks.any(axis=(1, 2, 3)) | (False if ref is None else ref.any(axis=(1, 2, 3)))
    shown = list(range(len(case.names))) if show_empty or not drawn.any() else [int(q) for q in np.flatnonzero(drawn)]
    heading = title or f"{case_dir.name}: prediction (solid)" + (" vs reference (dashed)" if ref is not None else "")
    return save_overlay_figure(
        np.asarray(volume[0]), grid, case.masks[shown], None if ref is None else ref[shown],
        [case.names[q] for q in shown], output if output is not None else case_dir / "overlay.png",
        window=window_range, title=heading,
    )
