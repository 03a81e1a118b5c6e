"""Transforms: modality-specific intensity normalisation and input sanity checks."""
