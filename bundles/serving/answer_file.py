"""The label file an inference request gets back: a NIfTI (3D Slicer, curl) or the NRRD OHIF v3 asks for.

OHIF v3's MONAI Label plugin (the build inside the monailabel 0.8.5 wheel, ``MonaiLabelClient.infer`` in
``ohif/3933.bundle.*.js``) sends ``result_extension: ".nrrd"``, ``result_dtype: "uint8"`` and
``result_compress: false``, reads the answer with nrrd-js and copies its raw voxel bytes, one per voxel, into
the label map of the series it shows (``MonaiLabelPanel.updateView``): a NIfTI answer is unreadable there.
Such a request gets an NRRD on the same grid (LPS space directions and origin, voxels in the grid's own index
order, first index fastest, which is the order of the series' DICOM grid OHIF shows); every other request a
NIfTI with the input's header (:func:`bundles.io.writers.label_image`).

Answers are written in this server's own temp folder (:func:`results_dir`), completely before their name is
handed to MONAI Label, which deletes each file once sent.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import nibabel as nib
import nrrd
import numpy as np

from bundles.errors import PromptError
from bundles.io.atomic import atomic_write
from bundles.io.grid import ImageGrid
from bundles.io.writers import label_image, label_map

__all__ = ["write_answer", "results_dir"]

#: NIfTI world axes (RAS) -> NRRD ``left-posterior-superior`` space.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@functools.cache
def results_dir() -> str:
    """This server's own folder for answer files, made once per process in the temp folder.

    MONAI Label's client (3D Slicer's plugin) saves an answer as ``<its temp folder>/<the server's file name>``
    while the server deletes its file after sending: with both in the same temp folder of one machine, the
    server deleted the client's copy (results lost). In a folder of its own the server deletes only its own.
    The folder is removed when the process exits normally."""
    folder = tempfile.mkdtemp(prefix="medseg-serve-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _values(masks: np.ndarray, values: Sequence[int] | None) -> np.ndarray:
    """The label map of ``masks`` with mask ``q`` as ``values[q]`` (default ``q + 1``)."""
    labels = label_map(masks)
    if values is None:
        return labels
    mapped = np.zeros(labels.shape, dtype=np.uint16 if max(values, default=0) > 255 else np.uint8)
    for q, value in enumerate(values):
        mapped[labels == q + 1] = value
    return mapped


def _write_nrrd(path: str, labels: np.ndarray, grid: ImageGrid, request: Mapping[str, Any]) -> None:
    dtype = np.dtype("<u2") if request.get("result_dtype") == "uint16" else np.dtype("u1")
    if labels.size and int(labels.max()) > np.iinfo(dtype).max:
        raise PromptError(f"the answer holds label value {int(labels.max())}, more than the {dtype.name} the request asks for"
                          " (result_dtype) can hold; OHIF's label map holds values up to 255")
    lps = RAS_TO_LPS @ np.asarray(grid.affine, dtype=np.float64)[:3]
    header = {"space": "left-posterior-superior", "space directions": lps[:, :3].T, "space origin": lps[:, 3],
              "kinds": ["domain"] * 3, "encoding": "gzip" if request.get("result_compress") is True else "raw"}
    atomic_write(path, lambda tmp: nrrd.write(str(tmp), labels.astype(dtype), header, index_order="F"))


def write_answer(masks: np.ndarray, grid: ImageGrid, request: Mapping[str, Any], values: Sequence[int] | None = None) -> str:
    """The answer file of bool ``masks`` ``(K, X, Y, Z)`` on ``grid`` in the form ``request`` asks for (module
    docstring); mask ``q`` has value ``values[q]`` (default ``q + 1``). Returns its path.

    Raises:
        PromptError: a value does not fit the ``result_dtype`` the request asks for (OHIF: uint8, up to 255).
    """
    labels = _values(np.asarray(masks, dtype=bool), values)
    nrrd_asked = request.get("result_extension") == ".nrrd"
    handle, path = tempfile.mkstemp(suffix=".nrrd" if nrrd_asked else ".nii.gz", prefix="medseg-", dir=results_dir())
    os.close(handle)
    try:
        if nrrd_asked:
            _write_nrrd(path, labels, grid, request)
        else:
            atomic_write(path, lambda tmp: nib.save(label_image(labels, grid), str(tmp)))
    except BaseException:
        os.unlink(path)  # never sent: MONAI Label deletes only what it sends
        raise
    return path
