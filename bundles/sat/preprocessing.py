"""SAT's spatial and intensity preprocessing, shared by inference and training (official SAT inference.py).

Orientation to ``orientation`` (RAS), resampling to ``spacing`` (1x1x3 mm; bilinear for images, nearest for
label maps), crop to the bounding box of image voxels > 0 (margin 0), then per-modality normalisation
(:func:`bundles.sat.intensity.normalize_intensity`). The returned MetaTensors carry the affine of
the preprocessed grid, which is how predictions are put back on the input grid.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.data import MetaTensor
from monai.transforms import Compose, CropForegroundd, Orientationd, Spacingd

from bundles.io.grid import RAS_LABELS
from bundles.sat.intensity import normalize_intensity

__all__ = ["SATPreprocessing"]



class SATPreprocessing:
    """Bring an image (and optionally its label map) onto the model grid and normalise the image.

    Args:
        spacing: target spacing in mm along the ``orientation`` axes (official 1x1x3).
        orientation: target axis codes (official "RAS").
        crop_foreground: crop to the bounding box of image voxels > 0 (official: yes).
    """

    def __init__(self, spacing: Sequence[float] = (1.0, 1.0, 3.0), orientation: str = "RAS", crop_foreground: bool = True):
        self.spacing = tuple(float(s) for s in spacing)
        self.orientation = orientation
        self.crop_foreground = crop_foreground

    def __call__(
        self, image: MetaTensor, modality: str, label: MetaTensor | None = None
    ) -> tuple[MetaTensor, MetaTensor | None]:
        """``image`` ``(1, X, Y, Z)`` (and ``label`` on the same grid) -> preprocessed ``(1, x, y, z)`` pair.

        The label map keeps its values (nearest interpolation); ``None`` stays ``None``.
        """
        keys = ["image"] if label is None else ["image", "label"]
        modes = ["bilinear"] if label is None else ["bilinear", "nearest"]
        steps = [Orientationd(keys, axcodes=self.orientation, labels=RAS_LABELS), Spacingd(keys, pixdim=self.spacing, mode=modes)]
        data = Compose(steps)({"image": image, **({} if label is None else {"label": label})})
        if self.crop_foreground and bool((data["image"] > 0).any()):
            data = CropForegroundd(keys, source_key="image", select_fn=lambda x: x > 0, margin=0, allow_smaller=True)(data)
        img = data["image"]
        normalised = MetaTensor(normalize_intensity(img.as_tensor(), modality), affine=img.affine.clone())
        lab = None if label is None else MetaTensor(data["label"].as_tensor().round(), affine=data["label"].affine.clone())
        return normalised, lab
