"""SAM-Med3D (and SAM-Med3D-turbo): the 3D SAM network of uni-medical/SAM-Med3D, built from the shared SAM base."""

from bundles.networks.sam_med3d.sam_med3d import VARIANTS, VIT_B_ORI, SAMMed3D

__all__ = ["SAMMed3D", "VARIANTS", "VIT_B_ORI"]
