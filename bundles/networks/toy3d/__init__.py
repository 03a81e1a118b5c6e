"""Toy3D: a tiny 3D click network (image + click maps -> logits), the worked example of adding a family
(CONTRIBUTING.md "Add a family"; ``tests/test_toy3d_family.py`` drives it through every entry point)."""

from bundles.networks.toy3d.toy3d import VARIANTS, Toy3D

__all__ = ["Toy3D", "VARIANTS"]
