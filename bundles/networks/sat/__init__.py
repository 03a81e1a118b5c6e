"""SAT (text-prompted 3D segmentation): the segmentation network and its text encoders.

``SAT`` is the network (U-Net + query decoder + mask head, ``sat.py``); ``build_text_encoder`` builds one
of the text encoders (``text_encoder.py``) that turn anatomical terms into the network's queries.
"""

from bundles.networks.sat.sat import NANO, PRO, SAT
from bundles.networks.sat.text_encoder import build_text_encoder

__all__ = ["SAT", "NANO", "PRO", "build_text_encoder"]
