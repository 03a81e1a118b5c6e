"""SAMed's glue: preprocessing (SAMed's HU window), the slice predictor, training slices and step, the
conversion of official SAM + LoRA files and the export back.

``segment`` (``api.py``) is the short Python API.
"""

__all__ = ["segment"]


def __getattr__(name: str):
    if name == "segment":
        from bundles.samed.api import segment

        return segment
    raise AttributeError(name)
