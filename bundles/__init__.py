"""Reusable parts of the segmentation-foundation-model bundles.

A family-neutral core, organised by concern like MONAI core: ``io`` (cases, reading, validating and
writing images), ``precision`` (device, layout, autocast), ``inferers`` (masks back on the input grid),
``engines`` (the per-case segmentation job, training, tracking), ``checkpoints`` (strict loading, release
records), ``transforms``, ``losses``, ``metrics``, ``data`` (demo data and shipped example scans) and
``visualize``; networks under ``networks/<family>``; and one package of glue per family (``sat``). The core
never imports a family. The bundle folders (``sat_nano/``, ``sat_pro/``, ...) only hold configuration that
points here through ``_target_``.
"""

__version__ = "0.1.0"
