"""DICOM-SEG (binary, one segment per name) built and read back through world coordinates.

Each SEG frame is placed on the voxel grid by its own ``ImagePositionPatient``/``ImageOrientationPatient``/
``PixelSpacing`` (LPS, converted to RAS): no assumption about axis order or slice direction is made.

Patient and study attributes are copied from the source series as they are; the type-2 ones that
de-identified series often lack (PatientBirthDate, ...) are written empty, as DICOM PS3.3 allows for
type-2 attributes. Segments whose name is a known anatomical structure get its SNOMED CT code (with a
laterality modifier for ``left ...``/``right ...``); other names get the generic "Anatomical Structure" code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from os import PathLike

import highdicom as hd
import numpy as np
import pydicom
from highdicom.sr.coding import CodedConcept
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid
from pydicom.valuerep import DA, TM

import bundles
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

# Generic SNOMED CT codes (DICOM PS3.16 CID 7150/7151), used for names without a known anatomy code.
_CATEGORY = CodedConcept("123037004", "SCT", "Anatomical Structure")
_TYPE = CodedConcept("91723000", "SCT", "Anatomical Structure")
_ALGORITHM_FAMILY = CodedConcept("123110", "DCM", "Artificial Intelligence")

_LATERALITY = {"left": codes.SCT.Left, "right": codes.SCT.Right}
"""SegmentedPropertyTypeModifierCodeSequence values for paired structures (DICOM PS3.16 CID 244 Laterality)."""

_WHOLE_TERMS = {
    # terms whose side is part of the structure itself (no laterality modifier)
    "left heart atrium": "LeftAtrium",
    "right heart atrium": "RightAtrium",
    "left heart ventricle": "LeftVentricle",
    "right heart ventricle": "RightVentricle",
    "left auricle of heart": "LeftAuricularAppendage",
}
"""Prompt names -> ``pydicom.sr.codedict.codes.SCT`` keyword, looked up before any laterality is split off."""

_ANATOMY = {
    "adrenal gland": "AdrenalGland",
    "amygdala": "Amygdala",
    "aorta": "Aorta",
    "autochthon": "ErectorSpinaeMuscle",  # TotalSegmentator's "autochthon" is the erector spinae
    "bladder": "Bladder",
    "bone": "Bone",
    "brachiocephalic trunk": "BrachiocephalicTrunk",
    "brachiocephalic vein": "BrachiocephalicVein",
    "brain": "Brain",
    "brain stem": "BrainStem",
    "brainstem": "BrainStem",
    "breast": "Breast",
    "bronchie": "Bronchus",
    "bronchus": "Bronchus",
    "buccal mucosa": "BuccalMucosa",
    "carotid artery": "CarotidArtery",
    "caudate nucleus": "CaudateNucleus",
    "celiac trunk": "CeliacAxis",
    "cerebellum": "Cerebellum",
    "clavicle": "Clavicle",
    "colon": "Colon",
    "common carotid artery": "CommonCarotidArtery",
    "corpus callosum": "CorpusCallosum",
    "costal cartilage": "CostalCartilage",
    "duodenum": "Duodenum",
    "esophagus": "Esophagus",
    "eyeball": "Eyeball",
    "femur": "Femur",
    "frontal lobe": "FrontalLobe",
    "gall bladder": "Gallbladder",
    "gallbladder": "Gallbladder",
    "globus pallidus": "GlobusPallidus",
    "grey matter": "GrayMatter",
    "gray matter": "GrayMatter",
    "heart": "Heart",
    "heart ascending aorta": "AscendingAorta",
    "heart atrium": "Atrium",
    "heart ventricle": "Ventricle",
    "hepatic vein": "HepaticVein",
    "hippocampus": "Hippocampus",
    "humerus": "Humerus",
    "iliac artery": "IliacArtery",
    "iliac vena": "CommonIliacVein",
    "inferior vena cava": "InferiorVenaCava",
    "insula": "Insula",
    "internal auditory canal": "InternalAuditoryCanal",
    "internal carotid artery": "InternalCarotidArtery",
    "internal jugular vein": "InternalJugularVein",
    "kidney": "Kidney",
    "lacrimal gland": "LacrimalGland",
    "larynx": "Larynx",
    "lateral ventricle": "LateralVentricle",
    "lens": "Lens",
    "lips": "Lip",
    "liver": "Liver",
    "lung": "Lung",
    "lymph node": "LymphNode",
    "mandible": "Mandible",
    "mediastinum": "Mediastinum",
    "middle ear": "MiddleEar",
    "muscle": "Muscle",
    "nasal cavity": "NasalCavity",
    "nucleus accumbens": "NucleusAccumbens",
    "occipital lobe": "OccipitalLobe",
    "optic chiasm": "OpticChiasm",
    "optic nerve": "OpticNerve",
    "oral cavity": "OralCavity",
    "ovary": "Ovary",
    "pallidum": "GlobusPallidus",
    "pancreas": "Pancreas",
    "parietal lobe": "ParietalLobe",
    "parotid gland": "ParotidGland",
    "pharynx": "Pharynx",
    "pituitary gland": "Pituitary",
    "portal vein": "PortalVein",
    "prostate": "Prostate",
    "pulmonary artery": "PulmonaryArtery",
    "putamen": "Putamen",
    "rectum": "Rectum",
    "renal artery": "RenalArtery",
    "renal vein": "RenalVein",
    "rib": "Rib",
    "rib cartilage": "CostalCartilage",
    "sacrum": "Sacrum",
    "scapula": "Scapula",
    "skin": "Skin",
    "skull": "Skull",
    "small bowel": "SmallIntestine",
    "small intestine": "SmallIntestine",
    "spinal cord": "SpinalCord",
    "spleen": "Spleen",
    "splenic vein": "SplenicVein",
    "sternum": "Sternum",
    "stomach": "Stomach",
    "subclavian artery": "SubclavianArtery",
    "submandibular gland": "SubmandibularGland",
    "substantia nigra": "SubstantiaNigra",
    "superior vena cava": "SuperiorVenaCava",
    "temporal lobe": "TemporalLobe",
    "temporomandibular joint": "TemporomandibularJoint",
    "testis": "Testis",
    "third ventricle": "ThirdVentricle",
    "thymus": "Thymus",
    "thyroid": "Thyroid",
    "thyroid gland": "Thyroid",
    "tibia": "Tibia",
    "trachea": "Trachea",
    "urinary bladder": "Bladder",
    "uterocervix": "Cervix",
    "uterus": "Uterus",
    "vertebrae": "Vertebra",
    "white matter": "WhiteMatter",
}
"""Anatomical structures of the SAT vocabulary (``bundles/sat/data/sat_terminology_list.json``, without the
side) -> keyword of ``pydicom.sr.codedict.codes.SCT`` (DICOM PS3.16 CID 7151 style anatomic codes). Only
anatomy is listed: lesions and tumours ("liver tumor") keep the generic code, not a morphology code under the
anatomy category."""


def _sct(keyword: str) -> CodedConcept | None:
    """The SNOMED CT code pydicom knows under ``keyword``, or None (a pydicom release without it)."""
    try:
        code = getattr(codes.SCT, keyword)
    except (AttributeError, RuntimeError):  # unknown keyword / keyword with several codes
        return None
    return CodedConcept(code.value, code.scheme_designator, code.meaning)


def _normalise_term(name: str) -> str:
    """Lower case, single spaces, no ``ct_``/``mri_``/``pet_`` vocabulary prefix, ``_`` read as a space."""
    term = re.sub(r"[\s_]+", " ", str(name).strip().lower())
    return re.sub(r"^(ct|mri|pet) ", "", term)


def segment_property_type(name: str) -> tuple[CodedConcept, CodedConcept, CodedConcept | None]:
    """SegmentedPropertyCategory, SegmentedPropertyType and laterality modifier (or None) for a prompt name.

    A name that is a known anatomical structure (see :data:`_ANATOMY`; case, ``_`` and a ``ct_``-style prefix
    ignored) gets its SNOMED CT code from ``pydicom.sr.codedict.codes.SCT``: ``"liver"`` -> Liver (10200004).
    A ``"left "``/``"right "`` prefix becomes a Left (7771000)/Right (24028007) modifier of the structure's code:
    ``"left kidney"`` -> Kidney (64033007) + Left. Anything else gets the generic "Anatomical Structure" type
    (91723000). The category is "Anatomical Structure" (123037004) in all cases.
    """
    term = _normalise_term(name)
    if term in _WHOLE_TERMS and (code := _sct(_WHOLE_TERMS[term])) is not None:
        return _CATEGORY, code, None
    side, _, rest = term.partition(" ")
    modifier = None
    if side in _LATERALITY and rest:
        term, modifier = rest, _LATERALITY[side]
    keyword = _ANATOMY.get(term)
    code = _sct(keyword) if keyword else None
    if code is None:
        return _CATEGORY, _TYPE, None
    if modifier is not None:
        modifier = CodedConcept(modifier.value, modifier.scheme_designator, modifier.meaning)
    return _CATEGORY, code, modifier


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
