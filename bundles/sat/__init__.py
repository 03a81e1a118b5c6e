"""SAT's glue on the family-neutral core: preprocessing, inferer, prompts and vocabulary, query cache,
training crops, losses and module, knowledge pretraining and the converters. The networks live in
:mod:`bundles.networks.sat`; segmenting from Python is :func:`bundles.segment` (``bundles.segment("sat_nano", ...)``)."""
