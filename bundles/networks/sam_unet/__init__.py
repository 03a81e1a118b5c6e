"""SAM-UNet (Yang et al. 2024): frozen SAM ViT encoder + ResNet branch + multi-scale HQ-style decoder, on the shared SAM base."""

from bundles.networks.sam_unet.sam_unet import VARIANTS, SAMUNet

__all__ = ["SAMUNet", "VARIANTS"]
