"""The Segment-Anything building blocks shared by every SAM-based family, in 2D and 3D.

One implementation per concept, written for any number of spatial dimensions (2 for SAMed / SAM-UNet,
3 for SAM-Med3D) with the official parameter names, so each family's official checkpoint loads strictly:

- ``vit_encoder.py``: the ViT image encoder (patch embedding, absolute position embedding, blocks with
  windowed or global attention and decomposed relative positions, convolutional neck);
- ``windows.py``, ``rel_pos.py``: window partitioning with zero padding and the decomposed relative
  position bias the encoder's attention uses;
- ``position_encoding.py``: random Fourier features for points and the dense grid;
- ``prompt_encoder.py``: points, padding points and mask prompts -> sparse and dense embeddings;
- ``two_way_transformer.py`` + ``mask_decoder.py``: the two-way transformer and the mask decoder;
- ``layer_norm.py``, ``mlp.py``: channel-first layer norm and the small MLPs.

Source of the design: facebookresearch/segment-anything ``modeling/`` (2D) and uni-medical/SAM-Med3D
``segment_anything/modeling/*3D.py`` (3D); our own code.
"""

from bundles.networks.sam.mask_decoder import MaskDecoder
from bundles.networks.sam.prompt_encoder import PromptEncoder
from bundles.networks.sam.two_way_transformer import TwoWayTransformer
from bundles.networks.sam.vit_encoder import ViTEncoder

__all__ = ["MaskDecoder", "PromptEncoder", "TwoWayTransformer", "ViTEncoder"]
