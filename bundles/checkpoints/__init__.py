"""Checkpoint handling: reading any known container safely, strict loading, model cards and release
records. Each family's converters of official releases live in its own package (``bundles/sat/convert.py``)."""
