"""SAT's glue on the family-neutral core: preprocessing, inferer, prompts and vocabulary, query cache,
training crops, losses and module, knowledge pretraining, converters, the one-call API and the ``medseg`` command.
The networks live in :mod:`bundles.networks.sat`."""


def __getattr__(name: str):
    # the one-call API without importing torch and MONAI on `import bundles.sat` (the command line checks
    # prompts before that import)
    if name in ("segment", "segment_to_folder"):
        from bundles.sat import api

        return getattr(api, name)
    raise AttributeError(name)
