"""Reusable parts of the segmentation-foundation-model bundles.

Organised by concern, like MONAI core: ``io`` (reading, validating and writing images),
``transforms``, ``networks/<family>``, ``checkpoints`` (strict loading and converters of the official
releases), ``prompts``, ``inferers``, ``losses``, ``engines`` (training), ``metrics``, ``data`` (demo data
and shipped example scans) and ``visualize``. The bundle folders (``sat_nano/``, ``sat_pro/``, ...) only
hold configuration that points here through ``_target_``.
"""

__version__ = "0.1.0"
