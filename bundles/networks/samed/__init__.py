"""SAMed (hitachinsk/SAMed): LoRA-adapted 2D SAM for prompt-free multi-organ segmentation, on the shared SAM base."""

from bundles.networks.samed.samed import VARIANTS, SAMed

__all__ = ["SAMed", "VARIANTS"]
