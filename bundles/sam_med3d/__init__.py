"""SAM-Med3D's glue: preprocessing (1.5 mm, 128³ windows, z-score over voxels > 0), the click session (run by
the core's click prompt check, predictor and MONAI Label task, :mod:`bundles.interactive`), its click placement,
training, and its side of the click evaluation. From Python: ``bundles.open_session("sam_med3d", ...)``.
"""
