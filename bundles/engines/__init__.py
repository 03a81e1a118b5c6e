"""Engines: the per-case segmentation job every family runs, the training loop, run identity and tracking."""
