"""DICOM-SEG (binary, one segment per name) built and read back through world coordinates.

Each SEG frame is placed on the voxel grid by its own ``ImagePositionPatient``/``ImageOrientationPatient``/
``PixelSpacing`` (LPS, converted to RAS): no assumption about axis order or slice direction is made.

Patient and study attributes are copied from the source series as they are; the type-2 ones that
de-identified series often lack (PatientBirthDate, ...) are written empty, as DICOM PS3.3 allows for
type-2 attributes. Each segment is coded by its name (:mod:`bundles.data.anatomy_codes`: the structure's SNOMED CT
code, a laterality modifier for ``left ...``/``right ...``, the generic "Anatomical Structure" otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from os import PathLike

import highdicom as hd
import numpy as np
import pydicom
from highdicom.sr.coding import CodedConcept
from pydicom.uid import generate_uid
from pydicom.valuerep import DA, TM

import bundles
from bundles.data.anatomy_codes import Code, structure_codes
from bundles.errors import BundleInputError, ConfigurationError
from bundles.io.dicom_geometry import frame_affine
from bundles.io.grid import ImageGrid

__all__ = [
    "DEFAULT_SERIES_DESCRIPTION",
    "DEFAULT_ALGORITHM_NAME",
    "PATIENT_STUDY_TYPE2_ATTRIBUTES",
    "segment_property_type",
    "build_dicom_seg",
    "read_dicom_seg",
]

DEFAULT_SERIES_DESCRIPTION = "medseg-bundles segmentation"
"""SeriesDescription of a SEG when the caller names none."""

DEFAULT_ALGORITHM_NAME = "medseg-bundles"
"""AlgorithmName of every segment when the caller names no model (the version is then the package version)."""

_LO_MAX = 64
"""Maximum length of a DICOM LO (long string) value (PS3.5 table 6.2-1): SeriesDescription, AlgorithmName,
AlgorithmVersion are LO."""

PATIENT_STUDY_TYPE2_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyID",
)
"""Type-2 attributes of the Patient and General Study modules (PS3.3 C.7.1.1, C.7.2.1) that highdicom copies
from the first source image into the SEG: present but empty when the source lacks them."""

_PATIENT_SEX = ("M", "F", "O")
"""Defined terms of PatientSex (PS3.3 C.7.1.1); any other value is written empty."""

_ALGORITHM_FAMILY = CodedConcept("123110", "DCM", "Artificial Intelligence")
"""AlgorithmFamilyCodeSequence of every segment (DICOM code 123110)."""


def _coded(code: Code) -> CodedConcept:
    return CodedConcept(code.value, code.scheme, code.meaning)


def segment_property_type(name: str) -> tuple[CodedConcept, CodedConcept, CodedConcept | None]:
    """SegmentedPropertyCategory, SegmentedPropertyType and laterality modifier (or None) for a prompt name:
    the codes of :func:`bundles.data.anatomy_codes.structure_codes` (``"left kidney"`` -> Anatomical Structure,
    Kidney, Left; an unknown name -> Anatomical Structure, Anatomical Structure, None)."""
    codes = structure_codes(name)
    return _coded(codes.category), _coded(codes.type), None if codes.laterality is None else _coded(codes.laterality)


def _long_string(value: object, what: str) -> str:
    """``value`` as a valid LO: backslashes (the value separator) and control characters become ``/``/space,
    cut to 64 characters.

    Raises:
        ConfigurationError: the value is empty.
    """
    text = re.sub(r"[\x00-\x1f\x7f]", " ", str(value).replace("\\", "/")).strip()
    if not text:
        raise ConfigurationError(f"DICOM-SEG {what} must not be empty; pass a name (or leave the default)")
    return text[:_LO_MAX]


def _complete_patient_study(ds: pydicom.Dataset, path: str) -> None:
    """Make the patient/study attributes of a source slice usable for the SEG, in memory only.

    Missing or unparseable type-2 attributes (:data:`PATIENT_STUDY_TYPE2_ATTRIBUTES`) become empty;
    a PatientSex other than M/F/O becomes empty. Present values are kept.

    Raises:
        BundleInputError: the slice has no StudyInstanceUID (type 1; a SEG must name the study).
    """
    if not str(ds.get("StudyInstanceUID", "") or "").strip():
        raise BundleInputError(path, "source DICOM slice has no StudyInstanceUID; a DICOM-SEG must reference the study")
    for keyword in PATIENT_STUDY_TYPE2_ATTRIBUTES:
        value = ds.get(keyword)
        if value is None:
            setattr(ds, keyword, "")
    for keyword, parse in (("PatientBirthDate", DA), ("StudyDate", DA), ("StudyTime", TM)):
        try:
            parse(ds.get(keyword) or "")
        except (ValueError, TypeError):  # e.g. "2000-01-01" or "unknown" in a hand-edited header
            setattr(ds, keyword, "")
    if str(ds.PatientSex).strip().upper() not in _PATIENT_SEX:
        ds.PatientSex = ""
    else:
        ds.PatientSex = str(ds.PatientSex).strip().upper()


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


def _segment_description(
    number: int, name: str, algorithm: hd.AlgorithmIdentificationSequence
) -> hd.seg.SegmentDescription:
    """Segment ``number`` labelled ``name`` with the codes of :func:`segment_property_type`."""
    category, property_type, modifier = segment_property_type(name)
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name,
        segmented_property_category=category,
        segmented_property_type=property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    if modifier is not None:  # nested in the type item (PS3.3 C.8.20.2); highdicom has no argument for it
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
    return description


def build_dicom_seg(
    masks: np.ndarray,
    names: Sequence[str],
    grid: ImageGrid,
    *,
    series_description: str = DEFAULT_SERIES_DESCRIPTION,
    algorithm_name: str = DEFAULT_ALGORITHM_NAME,
    algorithm_version: str | None = None,
    algorithm_parameters: Mapping[str, str] | None = None,
) -> hd.seg.Segmentation:
    """A BINARY DICOM-SEG of ``masks`` (bool ``(Q, X, Y, Z)`` on ``grid``) referencing the source series.

    Segment ``q + 1`` has SegmentLabel ``names[q]`` and the codes of :func:`segment_property_type` (SNOMED CT
    anatomy code where known, else the generic "Anatomical Structure"). Patient and study attributes come
    from the source series; type-2 ones it lacks are empty (de-identified series work). UIDs are derived from
    the source SeriesInstanceUID and the names, so the same input gives the same SEG.

    Args:
        masks: bool ``(Q, X, Y, Z)`` on ``grid``.
        names: ``Q`` prompt names, used as SegmentLabel.
        grid: grid of a DICOM series (``grid.dicom_files`` set by ``read_image``).
        series_description: SeriesDescription of the SEG (LO, cut to 64 characters).
        algorithm_name: AlgorithmName of every segment: the model (e.g. ``"SAT-Pro"``; LO, 64 characters).
        algorithm_version: AlgorithmVersion: the weights' id or hash (default: the package version; LO,
            cut to 64 characters).
        algorithm_parameters: AlgorithmParameters, ``{name: value}`` strings (optional).

    Raises:
        ConfigurationError: ``grid`` did not come from a DICOM series; an empty description or algorithm name.
        BundleInputError: a source slice cannot be read again, or has no StudyInstanceUID.
    """
    if not grid.dicom_files:
        raise ConfigurationError(f"{grid.source}: DICOM-SEG output needs a DICOM series as input (this grid has no DICOM files)")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=_long_string(algorithm_name, "algorithm_name"),
        family=_ALGORITHM_FAMILY,
        version=_long_string(algorithm_version if algorithm_version is not None else bundles.__version__, "algorithm_version"),
        parameters={str(k): str(v) for k, v in algorithm_parameters.items()} if algorithm_parameters else None,
    )
    series_description = _long_string(series_description, "series_description")
    sources = []
    for name in grid.dicom_files:
        try:
            ds = pydicom.dcmread(name)
        except Exception as exc:  # the series was readable moments ago; report which file went away
            raise BundleInputError(name, f"source DICOM slice cannot be read for DICOM-SEG ({exc})") from exc
        _complete_patient_study(ds, name)
        sources.append(ds)
    frames = np.zeros((len(sources), int(sources[0].Rows), int(sources[0].Columns), len(names)), dtype=bool)
    for f, ds in enumerate(sources):
        x, y, z, inside = _frame_voxels(
            ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing, int(ds.Rows), int(ds.Columns), grid
        )
        frames[f] = np.moveaxis(masks[:, x, y, z], 0, -1) & inside[..., None]
    descriptions = [_segment_description(q + 1, str(name), algorithm) for q, name in enumerate(names)]
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
        series_description=series_description,
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
