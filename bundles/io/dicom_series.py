"""``write_dicom_series``: a CT volume as a single-frame DICOM series that ``read_image`` reads back exactly;
``dicom_series_case_id``: a readable, file-name-safe case id for a DICOM series folder."""

from __future__ import annotations

import hashlib
import os
import re
from os import PathLike
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from bundles.errors import BundleInputError
from bundles.io.atomic import atomic_write
from bundles.io.dicom_geometry import LPS_TO_RAS
from bundles.io.validation import check_exists, check_single_series, read_dicom_image_header

__all__ = ["write_dicom_series", "dicom_series_case_id", "HU_INTERCEPT"]

HU_INTERCEPT = -1024.0
"""RescaleIntercept written to every slice (stored value = HU + 1024, slope 1), the usual CT convention."""

_ORTHOGONALITY_TOL = 1e-6


def _check_affine(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if volume.ndim != 3 or affine.shape != (4, 4):
        raise ValueError(f"expected a (X, Y, Z) volume and a 4x4 affine; got {volume.shape} and {affine.shape}")
    cols = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    gram = cols.T @ cols
    if np.max(np.abs(gram - np.eye(3))) > _ORTHOGONALITY_TOL:
        raise ValueError("a DICOM series needs orthogonal voxel axes; this affine is sheared")
    if np.linalg.det(cols) <= 0:
        raise ValueError(
            "left-handed affine: readers stack DICOM slices along row x column cosine, so the third axis would come"
            " back reversed; flip the volume's third axis (and the affine) first"
        )
    return affine


def write_dicom_series(
    volume: np.ndarray,
    affine: np.ndarray,
    out_dir: str | PathLike,
    *,
    patient_id: str = "PHANTOM",
    series_description: str = "synthetic CT",
    seed: str = "medseg-bundles",
) -> list[Path]:
    """Write ``volume`` ``(X, Y, Z)`` in HU on ``affine`` (voxel -> RAS mm) as one CT slice file per ``z``.

    Slice ``k`` holds ``volume[:, :, k]`` with X along the DICOM columns and Y along the rows; its
    ``ImagePositionPatient`` is voxel ``(0, 0, k)`` in LPS, ``ImageOrientationPatient`` the LPS directions of
    the X and Y axes, ``PixelSpacing`` ``[dy, dx]`` and ``SliceThickness`` ``dz`` (column norms of the
    affine). Pixels are int16 with ``RescaleSlope`` 1 and ``RescaleIntercept`` :data:`HU_INTERCEPT`; HU are
    rounded to integers. UIDs are derived from ``seed`` and ``patient_id``, so a call is reproducible.
    ``read_image(out_dir)`` returns ``volume`` (rounded) and ``affine`` to float precision.

    Returns:
        The written files in slice order (``slice_0000.dcm`` ...).

    Raises:
        ValueError: not a 3D volume / 4x4 affine, sheared axes (DICOM needs orthogonal axes), a left-handed
            affine (the slice order would come back reversed), or HU outside what int16 with the intercept holds.
    """
    volume = np.asarray(volume)
    affine = _check_affine(volume, affine)
    stored = np.rint(volume.astype(np.float64) - HU_INTERCEPT)
    info = np.iinfo(np.int16)
    if stored.min() < info.min or stored.max() > info.max:
        raise ValueError(f"HU range {volume.min()}..{volume.max()} does not fit int16 with intercept {HU_INTERCEPT}")
    stored = stored.astype(np.int16)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    lps = LPS_TO_RAS @ affine
    orientation = np.concatenate([lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]])
    study_uid, series_uid, frame_uid = (generate_uid(entropy_srcs=[seed, patient_id, kind]) for kind in ("study", "series", "frame"))
    out_dir = Path(out_dir)
    paths = []
    for k in range(volume.shape[2]):
        sop_uid = generate_uid(entropy_srcs=[seed, patient_id, "instance", str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality, ds.Manufacturer = "CT", "medseg-bundles"
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = f"{patient_id}^", patient_id, "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "20000101", "000000", "1", "", ""
        ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = 1, k + 1, series_description
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [float(v) for v in (lps @ np.array([0.0, 0.0, k, 1.0]))[:3]]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = int(volume.shape[1]), int(volume.shape[0])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = HU_INTERCEPT, 1.0, "HU"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        paths.append(atomic_write(out_dir / f"slice_{k:04d}.dcm", lambda tmp, d=ds: pydicom.dcmwrite(tmp, d, write_like_original=False)))
    return paths


_CASE_ID_PART_MAX = 64
"""Longest part of a case id (the LO limit of PatientID/SeriesDescription, PS3.5 table 6.2-1)."""

_UID_TAIL = 8
"""Characters of the SeriesInstanceUID's end that make a case id unique per series."""


def _safe_part(value: object) -> str:
    """``value`` with every run of characters outside ``[A-Za-z0-9._-]`` as one ``_``, without leading or
    trailing ``._-`` (no hidden files, no ``..``), at most 64 characters."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", str(value or "").strip())
    return text.strip("._-")[:_CASE_ID_PART_MAX].strip("._-")


def dicom_series_case_id(folder: str | PathLike, series_uid: str | None = None) -> str:
    """Readable, file-name-safe case id of the DICOM series in ``folder``, from one slice header.

    The id is ``<PatientID>_<SeriesDescription>_<last 8 characters of SeriesInstanceUID>``; missing or empty
    parts are skipped, characters outside ``[A-Za-z0-9._-]`` become ``_``. Two series (different
    SeriesInstanceUIDs) of the same patient and description differ in the UID part. Without a
    SeriesInstanceUID the last part is 8 hex digits of a hash of the absolute folder path instead, so the id
    never degenerates to the folder's own name (``dicom``) or to nothing. Only the first file (sorted by name)
    that is a DICOM image (of ``series_uid`` when given: a folder holding several series) is read, without
    its pixels.

    Raises:
        BundleInputError: ``folder`` does not exist, is a file, or holds no DICOM image (names the sub-folder
            holding the series when there is exactly one, see :func:`~bundles.io.validation.check_single_series`).
    """
    folder = check_exists(folder)
    if not folder.is_dir():
        raise BundleInputError(folder, "is a file; a case id is made for the folder that holds a DICOM series")
    header = None
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        header = read_dicom_image_header(path)
        if header is not None and (series_uid is None or str(header.get("SeriesInstanceUID", "")) == series_uid):
            break
        header = None
    if header is None:
        check_single_series({}, folder)  # raises, naming a sub-folder that holds the series
    uid = str(header.get("SeriesInstanceUID", "") or "").strip()
    tail = _safe_part(uid[-_UID_TAIL:]) if uid else ""
    if not tail:
        tail = hashlib.sha1(os.path.abspath(folder).encode("utf-8")).hexdigest()[:_UID_TAIL]
    parts = [_safe_part(header.get("PatientID")), _safe_part(header.get("SeriesDescription")), tail]
    return "_".join(p for p in parts if p)
