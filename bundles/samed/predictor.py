"""SAMed's predictor for the core segmentation job: every axial slice through the network, one label map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor

from bundles.errors import ConfigurationError
from bundles.inferers.axial_slices import AxialSlices
from bundles.io.cases import Case
from bundles.io.grid import ImageGrid
from bundles.networks.samed import SAMed
from bundles.precision import autocast, channels_last, prepare_for_inference, resolve_device
from bundles.samed.preprocessing import body_slices, scale_ct, to_network_input, to_slice_size

__all__ = ["SlicePredictor"]


class SlicePredictor:
    """The :class:`bundles.engines.segmentation_job.Predictor` of SAMed.

    The CT is scaled (:func:`~bundles.samed.preprocessing.scale_ct`), cut into axial slices on its own grid
    (:class:`~bundles.inferers.axial_slices.AxialSlices`), each slice resized to the network input, the
    logits resized back to the slice and the class with the highest score taken (SAMed's softmax + argmax;
    at 512 x 512 slices exactly the official test, which takes the argmax at 512 and zooms the labels).

    Args:
        network: a :class:`~bundles.networks.samed.SAMed` with loaded weights.
        class_names: names of output channels 1..K (the label order the weights were trained with).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        amp: autocast (bf16 on the CPU, fp16 on CUDA).
        batch_size: slices per forward pass.
        skip_outside_body: slices with nothing above -125 HU are labelled background without running the
            network (off by default: the official loop runs every slice).
        progress: progress bar over slice batches.

    Raises:
        ConfigurationError: ``class_names`` does not have one name per foreground channel.
    """

    def __init__(
        self,
        network: SAMed,
        class_names: Sequence[str],
        device: str = "auto",
        amp: bool = False,
        batch_size: int = 8,
        skip_outside_body: bool = False,
        progress: bool = True,
    ):
        if len(class_names) != network.num_classes:
            raise ConfigurationError(f"class_names lists {len(class_names)} names for a network of {network.num_classes} classes")
        self.device = resolve_device(device)
        self.network = prepare_for_inference(network, self.device)
        self.class_names = list(class_names)
        self.amp = amp
        self.batch_size = batch_size
        self.skip_outside_body = skip_outside_body
        self.progress = progress

    def labels(self, slices: torch.Tensor) -> torch.Tensor:
        """Scaled slices (B, 1, R, A) -> label maps (B, 1, R, A) (0 = background, k = class_names[k - 1])."""
        x = channels_last(to_network_input(slices.to(self.device), self.network.img_size))
        with autocast(self.device, self.amp):
            logits = self.network(x)
        return to_slice_size(logits.float(), tuple(slices.shape[-2:])).argmax(dim=1, keepdim=True)

    @torch.inference_mode()
    def __call__(self, image: MetaTensor, grid: ImageGrid, case: Case, prompts: None) -> tuple[np.ndarray, list[str]]:
        """Masks (K, *grid.shape) bool on the input grid, one per class, and the class names."""
        volume = AxialSlices(scale_ct(image.as_tensor()), grid.affine)
        run = body_slices(volume.slices) if self.skip_outside_body else None
        labels = volume.predict(lambda x, _: self.labels(x), 1, self.batch_size, run=run, fill=0.0, progress=self.progress)[0]
        return np.stack([labels == k for k in range(1, len(self.class_names) + 1)]), list(self.class_names)
