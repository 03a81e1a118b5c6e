"""Transforms shared by the families: input sanity checks (is a CT in HU?), seeding of MONAI random transforms
and training augmentation (per-organ intensity shifts)."""
