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

Credentials come from MONAI Label's settings (environment ``MONAI_LABEL_DICOMWEB_USERNAME`` /
``MONAI_LABEL_DICOMWEB_PASSWORD``), never from the command line.
"""

from __future__ import annotations

import logging
import os
import pathlib
import re
import tempfile
from typing import Any

import numpy as np
from dicomweb_client.session_utils import create_session_from_user_pass
from monailabel.config import settings
from monailabel.datastore.dicom import DICOMwebClientX, DICOMWebDatastore
from monailabel.datastore.local import LocalDatastore
from monailabel.datastore.utils.convert import binary_to_image
from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.exception import ImageNotFoundException

from bundles.errors import BundleInputError
from bundles.io.dicom_seg import build_dicom_seg
from bundles.io.readers import read_image
from bundles.io.reference_masks import masks_from_label_map
from bundles.serving.label_names import legend_of

__all__ = ["ArchiveDatastore", "archive_datastore", "label_segments", "SEG_DESCRIPTION"]

logger = logging.getLogger(__name__)

#: A DICOM UID (PS3.5 9.1: digits and dots, at most 64 characters).
DICOM_UID = re.compile(r"[0-9]+(\.[0-9]+)*")

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
    label, label_grid = read_image(label_file)
    values = sorted(int(v) for v in np.unique(label[0].round().numpy()) if v > 0)
    if not values:
        raise BundleInputError(label_file, "the label holds no segment (every voxel is 0)")
    names = legend_of(info)
    legend = {v: names.get(str(v), f"label {v}") for v in values}
    masks = masks_from_label_map(label, label_grid, legend, list(legend.values()), grid, label_file)
    return masks, list(legend.values()), grid


class ArchiveDatastore(DICOMWebDatastore):
    """MONAI Label's DICOMweb datastore whose final labels become this project's DICOM-SEG (module docstring)."""

    def get_image_uri(self, image_id: str) -> str:
        """The fetched series as a NIfTI (MONAI Label's), for a SeriesInstanceUID the archive holds.

        Raises:
            ImageNotFoundException: ``image_id`` is no DICOM UID, or no series of the archive (the server
                answers 404; MONAI Label's own would fail inside the download with a 500).
        """
        if not DICOM_UID.fullmatch(image_id or ""):
            raise ImageNotFoundException(f"{str(image_id)[:80]!r} is not a series of the archive (an image id is a SeriesInstanceUID)")
        cached = os.path.join(self._datastore.image_path(), image_id)
        if not (os.path.isdir(cached) and os.listdir(cached)) and not self._client.search_for_series(search_filters={"SeriesInstanceUID": image_id}):
            raise ImageNotFoundException(f"series {image_id} is not in the archive {self._client.base_url}")
        uri = super().get_image_uri(image_id)
        # MONAI Label answers its first conversion of a series with a temporary file and later calls with the
        # datastore's copy: always the copy, so one series is one path (a click session keyed to it survives)
        stable = os.path.realpath(os.path.join(self._datastore.image_path(), f"{image_id}.nii.gz"))
        if uri != stable and os.path.isfile(stable):
            if os.path.dirname(os.path.realpath(uri)) == os.path.realpath(tempfile.gettempdir()):
                os.remove(uri)
            return stable
        return uri

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
