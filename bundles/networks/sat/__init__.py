"""SAT (text-prompted 3D segmentation): the segmentation network and its text encoders.

``SAT`` is the network (U-Net + query decoder + mask head, ``sat.py``); ``build_text_encoder`` builds one
of the text encoders (``text_encoder.py``) that turn anatomical terms into the network's queries. Both are
imported on first use, so the torch-free modules here (``term_text.py``) load without torch: the command
line checks prompts before torch is imported.
"""

__all__ = ["SAT", "NANO", "PRO", "build_text_encoder"]


def __getattr__(name: str):
    if name in ("SAT", "NANO", "PRO"):
        from bundles.networks.sat import sat

        return getattr(sat, name)
    if name == "build_text_encoder":
        from bundles.networks.sat.text_encoder import build_text_encoder

        return build_text_encoder
    raise AttributeError(name)
