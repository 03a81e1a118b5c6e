"""Inference pipelines that take a whole image on its own grid and return masks on that same grid."""
