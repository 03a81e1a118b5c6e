"""SAM-Med3D's glue: preprocessing (1.5 mm, 128³ windows, z-score over voxels > 0), the click session (run by
the core's click prompt check, predictor and MONAI Label task, :mod:`bundles.interactive`), its click placement,
training, and its side of the click evaluation.

``open_session`` (``api.py``) is the short Python API.
"""

__all__ = ["open_session"]


def __getattr__(name: str):
    if name == "open_session":
        from bundles.sam_med3d.api import open_session

        return open_session
    raise AttributeError(name)
