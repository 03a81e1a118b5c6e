"""A DICOMweb archive (Orthanc, dcm4chee, a cloud archive) as the server's studies: MONAI Label's own
DICOMweb datastore, with labels saved back as this project's DICOM-SEG.

What MONAI Label does (``monailabel/datastore/dicom.py``, 0.8.5) and is kept: an image id is a
SeriesInstanceUID of the archive (QIDO-RS, filtered by ``MONAI_LABEL_DICOMWEB_SEARCH_FILTER``, CT by
default); the series is fetched once (WADO-RS) into a cache folder and converted to a NIfTI on the same voxel
grid, which the infer tasks read and answer on (OHIF and Slicer map answers onto the series with it).

What this module changes:

- ``save_label`` of a final label writes the DICOM-SEG with :func:`bundles.io.dicom_seg.build_dicom_seg`, the
  writer the bundles' own ``--output_format dicom_seg`` uses: one segment per label value, each segment
  labelled with the client's name for it (Slicer's ``label_info``, ``label_names``) and coded with its anatomy
  code where the name is known. It is stored back with STOW-RS. MONAI Label's own conversion needs dcmqi,
  which it downloads at start-up (this server never reaches the network).
- Final labels for ``/train`` are those saved through this server (their NIfTI is kept in the cache beside
  the SEG's SeriesInstanceUID); SEG series stored in the archive by other tools are not read back.
- OHIF v3 (the build inside the monailabel wheel, which reads this archive through ``/proxy/dicom``) asks each
  inference for an NRRD answer: :func:`answer_as_asked` writes the tasks' label in the form a request asks for.

Credentials come from MONAI Label's settings (environment ``MONAI_LABEL_DICOMWEB_USERNAME`` /
``MONAI_LABEL_DICOMWEB_PASSWORD``), never from the command line.
"""

from __future__ import annotations

import gzip
import logging
import os
import pathlib
import tempfile
from collections.abc import Mapping
from typing import Any

import nibabel as nib

import numpy as np
from dicomweb_client.session_utils import create_session_from_user_pass
from monailabel.config import settings
from monailabel.datastore.dicom import DICOMwebClientX, DICOMWebDatastore
from monailabel.datastore.local import LocalDatastore
from monailabel.datastore.utils.convert import binary_to_image
from monailabel.interfaces.datastore import DefaultLabelTag

from bundles.errors import BundleInputError, PromptError
from bundles.io.dicom_seg import build_dicom_seg
from bundles.io.readers import read_image
from bundles.io.reference_masks import load_reference_masks
from bundles.serving.label_names import legend_of

__all__ = ["ArchiveDatastore", "archive_datastore", "answer_as_asked", "SEG_DESCRIPTION"]

logger = logging.getLogger(__name__)

#: SeriesDescription of the DICOM-SEG a saved label becomes.
SEG_DESCRIPTION = "Annotation (MONAI Label, medseg-bundles)"


def label_segments(label_file: str, info: dict[str, Any], series_dir: str) -> tuple[np.ndarray, list[str], Any]:
    """The saved label as masks on the fetched series' DICOM grid.

    Args:
        label_file: label map (NIfTI or NRRD; values 1..K) on the series' grid, as the clients save it.
        info: the label's info from the client (``label_info`` / ``label_names``); values it does not name are
            called ``label <value>``.
        series_dir: the fetched DICOM series.

    Returns:
        ``(masks, names, grid)``: bool ``(K, X, Y, Z)`` on the DICOM series' grid (resampled through world
        coordinates, nearest voxel), their names, the series grid (with its DICOM files).

    Raises:
        BundleInputError: an unreadable or empty label.
    """
    _, grid = read_image(series_dir)
    label, _ = read_image(label_file)
    values = sorted(int(v) for v in np.unique(label[0].round().numpy()) if v > 0)
    if not values:
        raise BundleInputError(label_file, "the label holds no segment (every voxel is 0)")
    names = legend_of(info)
    legend = {v: names.get(str(v), f"label {v}") for v in values}
    masks = load_reference_masks(label_file, legend, list(legend.values()), grid)
    return masks, list(legend.values()), grid


def _nrrd_vector(values: np.ndarray) -> str:
    return "(" + ",".join(repr(float(v)) for v in values) + ")"


def answer_as_asked(path: str, request: Mapping[str, Any], values: Mapping[int, int] | None = None) -> str:
    """The label NIfTI ``path`` a task wrote, in the form ``request`` asks for; returns the file to send.

    OHIF v3's MONAI Label plugin (``MonaiLabelClient.infer`` in the bundled ``ohif/3933.bundle.*.js``) sends
    ``result_extension: ".nrrd"``, ``result_dtype: "uint8"``, ``result_compress: false`` and reads the answer
    with nrrd-js (``SegmentationReader.parseNrrdData``), copying the raw voxel bytes, one byte per voxel, into
    its label-map volume (``MonaiLabelPanel.updateView``): a NIfTI answer is unreadable there. An ``.nrrd``
    request gets an NRRD (LPS space directions and origin of the same grid, voxels in the NIfTI's own order,
    first index fastest, which is the order of the series' DICOM grid that OHIF shows), uint8 unless
    ``result_dtype`` is ``uint16``, gzip-encoded when ``result_compress`` is true. Other requests (3D Slicer's)
    get the NIfTI unchanged.

    Args:
        path: the task's answer (a label NIfTI in the server's result folder; replaced here when converted).
        request: the inference request.
        values: label value -> value to answer with instead (SAT answers OHIF in its labels' indices).

    Raises:
        PromptError: a value does not fit the dtype asked for (OHIF asks uint8: values up to 255).
    """
    extension = request.get("result_extension")
    if extension != ".nrrd" and not values:
        return path
    try:
        return _convert(path, request, extension, values)
    except BaseException:
        if os.path.exists(path):
            os.unlink(path)  # never sent: MONAI Label deletes only what it sends
        raise


def _convert(path: str, request: Mapping[str, Any], extension: Any, values: Mapping[int, int] | None) -> str:
    image = nib.load(path)
    data = np.asarray(image.dataobj)
    if values:
        mapped = np.zeros(data.shape, dtype=np.uint16 if max(values.values()) > 255 else np.uint8)
        for old, new in values.items():
            mapped[data == old] = new
        data = mapped
    if extension != ".nrrd":
        answer = nib.Nifti1Image(data, image.affine, image.header)
        answer.set_data_dtype(data.dtype)
        nib.save(answer, path)
        return path
    dtype = np.dtype("<u2") if request.get("result_dtype") == "uint16" else np.dtype("u1")
    if data.size and int(data.max()) > np.iinfo(dtype).max:
        raise PromptError(f"the answer holds label value {int(data.max())}, more than the {dtype.name} the request asks for"
                          f" (result_dtype) can hold; OHIF's label map holds values up to 255")
    lps = np.diag([-1.0, -1.0, 1.0]) @ image.affine[:3]  # NIfTI world is RAS, NRRD's space here LPS
    compress = request.get("result_compress") is True
    header = "\n".join(["NRRD0004", f"type: {'uint16' if dtype.itemsize == 2 else 'uint8'}", "dimension: 3",
                        "space: left-posterior-superior", "sizes: " + " ".join(str(s) for s in data.shape),
                        "space directions: " + " ".join(_nrrd_vector(lps[:, n]) for n in range(3)),
                        "kinds: domain domain domain", "endian: little", f"encoding: {'gzip' if compress else 'raw'}",
                        "space origin: " + _nrrd_vector(lps[:, 3]), "", ""])
    voxels = data.astype(dtype).tobytes(order="F")  # first index fastest, as NIfTI stores and OHIF reads them
    handle, nrrd_path = tempfile.mkstemp(suffix=".nrrd", prefix="medseg-", dir=os.path.dirname(path))
    with os.fdopen(handle, "wb") as f:
        f.write(header.encode("ascii") + (gzip.compress(voxels) if compress else voxels))
    os.unlink(path)
    return nrrd_path


class ArchiveDatastore(DICOMWebDatastore):
    """MONAI Label's DICOMweb datastore whose final labels become this project's DICOM-SEG (module docstring)."""

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any], label_id: str = "") -> str:
        image_uri = self.get_image_uri(image_id)
        converted = ""
        if "".join(pathlib.Path(label_filename).suffixes) == ".bin":  # OHIF sends the voxels of its label map
            converted = label_filename = binary_to_image(image_uri, label_filename)
        try:
            info = dict(label_info or {})
            if label_tag == DefaultLabelTag.FINAL:
                series_dir = os.path.realpath(os.path.join(self._datastore.image_path(), image_id))
                masks, names, grid = label_segments(label_filename, info, series_dir)
                seg = build_dicom_seg(masks, names, grid, series_description=SEG_DESCRIPTION, algorithm_name="MONAI Label annotation")
                self._client.store_instances([seg])
                info.update(SeriesInstanceUID=str(seg.SeriesInstanceUID), segments=names)
                logger.info("%s: final label stored in the archive as DICOM-SEG %s (%s)", image_id, seg.SeriesInstanceUID, ", ".join(names))
            return LocalDatastore.save_label(self, image_id, label_filename, label_tag, info)
        finally:
            if converted:
                os.unlink(converted)

    def get_labeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        """Images with a final label saved through this server (see the module docstring)."""
        return LocalDatastore.get_labeled_images(self, label_tag, labels)

    def get_label_uri(self, label_id: str, label_tag: str, image_id: str = "") -> str:
        """The label saved through this server (its NIfTI in the cache)."""
        return LocalDatastore.get_label_uri(self, label_id, label_tag)


def archive_datastore(url: str) -> ArchiveDatastore:
    """The datastore of the DICOMweb service at ``url`` (``http(s)://host/dicom-web``) with MONAI Label's
    DICOMweb settings (credentials, search filter, cache folder, prefixes); nothing is fetched here."""
    session = None
    if settings.MONAI_LABEL_DICOMWEB_USERNAME and settings.MONAI_LABEL_DICOMWEB_PASSWORD:
        session = create_session_from_user_pass(settings.MONAI_LABEL_DICOMWEB_USERNAME, settings.MONAI_LABEL_DICOMWEB_PASSWORD)
    client = DICOMwebClientX(url=url.rstrip("/"), session=session, qido_url_prefix=settings.MONAI_LABEL_QIDO_PREFIX,
                             wado_url_prefix=settings.MONAI_LABEL_WADO_PREFIX, stow_url_prefix=settings.MONAI_LABEL_STOW_PREFIX)
    cache = (settings.MONAI_LABEL_DICOMWEB_CACHE_PATH or "").strip() or None
    return ArchiveDatastore(client, settings.MONAI_LABEL_DICOMWEB_SEARCH_FILTER, cache, settings.MONAI_LABEL_DICOMWEB_FETCH_BY_FRAME,
                            convert_to_nifti=True)
