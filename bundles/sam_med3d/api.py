"""SAM-Med3D's short Python API (:func:`bundles.open_session` for this bundle): a click session built from the
bundle's own inference config.

    from bundles.sam_med3d import open_session
    from bundles.io.readers import read_image

    session = open_session(model_dir="sam_med3d/models")           # converted official weights
    image, grid = read_image("ct.nii.gz")
    session.set_image(image[0], grid, modality="ct")
    liver = session.add_click((210, 180, 40), positive=True, obj="liver")   # bool mask on the input grid
    liver = session.add_click((230, 150, 44), positive=False, obj="liver")
    session.undo("liver")

The network, its weights and the settings (spacing, device, precision) are exactly those of
``python -m monai.bundle run --config_file configs/inference.json`` (plus the overlays a trained model
records in its ``training.json``).
"""

from __future__ import annotations

from os import PathLike
from typing import Any

from bundles.sam_med3d.session import SAMMed3DSession

__all__ = ["open_session"]


def open_session(model_dir: str | PathLike | None = None, *, device: str = "auto", **options: Any) -> SAMMed3DSession:
    """A :class:`~bundles.sam_med3d.session.SAMMed3DSession` with the weights in ``model_dir`` (default: the bundle's ``models/``).

    Args:
        model_dir: folder with ``model.pt`` (converted official weights, or a model trained here).
        device: ``auto``, ``cpu`` or ``cuda:N``.
        options: other config ids of ``configs/inference.json`` (``keep_largest_component=True``, ...).

    Raises:
        CheckpointError: missing or non-matching weights (named), before anything is loaded.
    """
    from bundles.api import open_session as open_any

    return open_any("sam_med3d", model_dir, device=device, settings=options)
