"""Serving the bundles in MONAI Label (``tools/serve.py`` starts it; the app folder is ``deploy/monailabel/``).

The app adds no pipeline of its own: each served bundle is its own ``configs/inference.json`` parsed once
(:class:`LoadedBundle`), and a request runs that config's prompt check and predictor (SAT, SAMed,
SAM-UNet) or its click session (SAM-Med3D). A family serves itself with one small file,
``bundles/<family>/serving.py``, named by each bundle's ``inference.json`` (config id ``serving_task``).

Request values are data, never configuration: they are read by the functions of
:mod:`bundles.serving.request_values` into plain lists and numbers and handed to the prompt checks; no request
value ever reaches MONAI's config parser (which evaluates ``$`` expressions and ``_target_`` objects).
"""
