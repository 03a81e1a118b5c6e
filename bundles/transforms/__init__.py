"""Transforms shared by the families: input sanity checks (is a CT in HU?)."""
