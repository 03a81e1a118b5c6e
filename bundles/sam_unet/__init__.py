"""SAM-UNet's glue: 8-bit windowing and SAM normalisation, box/point prompts and boxes from masks, the prompted
slice predictor, the SA-Med2D layout, training samples and step, starting from SAM's weights.

``segment`` (``api.py``) is the short Python API.
"""

__all__ = ["segment"]


def __getattr__(name: str):
    if name == "segment":
        from bundles.sam_unet.api import segment

        return segment
    raise AttributeError(name)
