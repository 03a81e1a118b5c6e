"""DICOM-SEG (binary, one segment per name) built and read back through world coordinates.

Each SEG frame is placed on the voxel grid by its own ``ImagePositionPatient``/``ImageOrientationPatient``/
``PixelSpacing`` (LPS, converted to RAS): no assumption about axis order or slice direction is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import highdicom as hd
import numpy as np
import pydicom
from highdicom.sr.coding import CodedConcept
from pydicom.uid import generate_uid

import bundles
from bundles.errors import BundleInputError, ConfigurationError
from bundles.io.dicom_geometry import frame_affine
from bundles.io.grid import ImageGrid

__all__ = ["build_dicom_seg", "read_dicom_seg"]

# Generic SNOMED CT codes (DICOM PS3.16 CID 7150/7151): SAT terms carry no SNOMED mapping, so every segment
# is an "Anatomical Structure" whose SegmentLabel holds the prompt name.
_CATEGORY = CodedConcept("123037004", "SCT", "Anatomical Structure")
_TYPE = CodedConcept("91723000", "SCT", "Anatomical Structure")
_ALGORITHM = hd.AlgorithmIdentificationSequence(
    name="medseg-bundles", family=CodedConcept("123110", "DCM", "Artificial Intelligence"), version=bundles.__version__
)


def _frame_voxels(
    position: Sequence[float], orientation: Sequence[float], spacing: Sequence[float], rows: int, cols: int, grid: ImageGrid
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest grid voxel ``(x, y, z)`` of every pixel ``(row, col)`` of a frame, and which lie inside the grid.

    Returns four ``(rows, cols)`` arrays: x, y, z (int64, clipped to the grid) and ``inside`` (bool).
    """
    to_voxel = np.linalg.inv(grid.affine) @ frame_affine(position, orientation, spacing)
    row, col = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    pixels = np.stack([col, row, np.zeros_like(row), np.ones_like(row)]).reshape(4, -1).astype(np.float64)
    voxels = np.rint(to_voxel @ pixels)[:3].astype(np.int64).reshape(3, rows, cols)
    shape = np.asarray(grid.shape).reshape(3, 1, 1)
    inside = np.all((voxels >= 0) & (voxels < shape), axis=0)
    x, y, z = (np.clip(voxels[a], 0, grid.shape[a] - 1) for a in range(3))
    return x, y, z, inside


def build_dicom_seg(masks: np.ndarray, names: Sequence[str], grid: ImageGrid) -> hd.seg.Segmentation:
    """A BINARY DICOM-SEG of ``masks`` (bool ``(Q, X, Y, Z)`` on ``grid``) referencing the source series.

    Segment ``q + 1`` is ``names[q]``. UIDs are derived from the source SeriesInstanceUID and the names, so
    the same input gives the same SEG.

    Raises:
        ConfigurationError: ``grid`` did not come from a DICOM series.
        BundleInputError: a source slice cannot be read again.
    """
    if not grid.dicom_files:
        raise ConfigurationError(f"{grid.source}: DICOM-SEG output needs a DICOM series as input (this grid has no DICOM files)")
    sources = []
    for name in grid.dicom_files:
        try:
            sources.append(pydicom.dcmread(name))
        except Exception as exc:  # the series was readable moments ago; report which file went away
            raise BundleInputError(name, f"source DICOM slice cannot be read for DICOM-SEG ({exc})") from exc
    frames = np.zeros((len(sources), int(sources[0].Rows), int(sources[0].Columns), len(names)), dtype=bool)
    for f, ds in enumerate(sources):
        x, y, z, inside = _frame_voxels(
            ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing, int(ds.Rows), int(ds.Columns), grid
        )
        frames[f] = np.moveaxis(masks[:, x, y, z], 0, -1) & inside[..., None]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=q + 1,
            segment_label=name,
            segmented_property_category=_CATEGORY,
            segmented_property_type=_TYPE,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=_ALGORITHM,
        )
        for q, name in enumerate(names)
    ]
    seed = [str(sources[0].SeriesInstanceUID), *names]
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(entropy_srcs=[*seed, "series"]),
        series_number=900,
        sop_instance_uid=generate_uid(entropy_srcs=[*seed, "instance"]),
        instance_number=1,
        manufacturer="medseg-bundles",
        manufacturer_model_name="medseg-bundles",
        software_versions=bundles.__version__,
        device_serial_number="0",
        content_label="SEGMENTATION",
        content_description="Automatic segmentation",
        omit_empty_frames=False,
    )


def read_dicom_seg(path: str | PathLike, grid: ImageGrid) -> tuple[np.ndarray, list[str]]:
    """Read a BINARY DICOM-SEG onto ``grid`` through world coordinates (nearest voxel per SEG pixel).

    Returns:
        ``(masks, names)``: bool ``(Q, X, Y, Z)`` with ``masks[q]`` the segment numbered ``q + 1`` and
        ``names[q]`` its SegmentLabel. SEG pixels outside the grid are dropped.

    Raises:
        BundleInputError: the file is not a readable DICOM-SEG, or is not BINARY.
    """
    try:
        seg = hd.seg.segread(str(path))
        pixels = seg.pixel_array
    except Exception as exc:  # highdicom/pydicom raise many types for a bad file
        raise BundleInputError(path, f"cannot be read as DICOM-SEG ({type(exc).__name__}: {exc})") from exc
    if seg.SegmentationType != "BINARY":
        raise BundleInputError(path, f"SegmentationType is {seg.SegmentationType}; only BINARY is supported")
    pixels = pixels.reshape(-1, int(seg.Rows), int(seg.Columns))
    names = [str(item.SegmentLabel) for item in sorted(seg.SegmentSequence, key=lambda s: int(s.SegmentNumber))]
    shared = seg.SharedFunctionalGroupsSequence[0]
    masks = np.zeros((len(names), *grid.shape), dtype=bool)
    for f, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        orientation = group.get("PlaneOrientationSequence", shared.get("PlaneOrientationSequence"))[0]
        measures = group.get("PixelMeasuresSequence", shared.get("PixelMeasuresSequence"))[0]
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        x, y, z, inside = _frame_voxels(
            group.PlanePositionSequence[0].ImagePositionPatient,
            orientation.ImageOrientationPatient,
            measures.PixelSpacing,
            int(seg.Rows),
            int(seg.Columns),
            grid,
        )
        hit = inside & (pixels[f] > 0)
        masks[number - 1, x[hit], y[hit], z[hit]] = True
    return masks, names
