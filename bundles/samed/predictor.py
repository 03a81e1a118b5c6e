"""SAMed's predictor for the core segmentation job: every axial slice through the network, one label map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor

from bundles.errors import ConfigurationError
from bundles.inferers.axial_slices import AxialSlices
from bundles.inferers.slice_frame import SliceFrame
from bundles.io.cases import Case
from bundles.io.grid import ImageGrid
from bundles.networks.samed import SAMed
from bundles.precision import autocast, channels_last, prepare_for_inference, resolve_device
from bundles.samed.preprocessing import body_slices, scale_ct

__all__ = ["SlicePredictor"]


class SlicePredictor:
    """The :class:`bundles.engines.segmentation_job.Predictor` of SAMed.

    The CT is scaled (:func:`~bundles.samed.preprocessing.scale_ct`), cut into axial slices on its own grid
    (:class:`~bundles.inferers.axial_slices.AxialSlices`), each slice brought to the network input
    (:class:`~bundles.inferers.slice_frame.SliceFrame`), the logits brought back to the slice and the class
    with the highest score taken (SAMed's softmax + argmax; at 512 x 512 slices exactly the official test,
    which takes the argmax at 512 and zooms the labels).

    Args:
        network: a :class:`~bundles.networks.samed.SAMed` with loaded weights.
        class_names: names of output channels 1..K (the label order the weights were trained with).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        amp: autocast (bf16 on the CPU, fp16 on CUDA).
        batch_size: slices per forward pass.
        skip_outside_body: slices with nothing above -125 HU are labelled background without running the
            network (off by default: the official loop runs every slice).
        slice_spacing: ``None`` (SAMed: each slice resized to the input) or the pixel size in mm slices are
            resampled to (models trained that way, e.g. the demo recipe).
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
        slice_spacing: float | None = None,
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
        self.frame = SliceFrame(network.img_size, "stretch" if slice_spacing is None else "spacing", slice_spacing)

    def labels(self, slices: torch.Tensor, pixel_mm: tuple[float, float]) -> torch.Tensor:
        """Scaled slices (B, 1, P, L) with pixel size (mm) -> label maps (B, 1, P, L) (0 = background, k =
        class_names[k - 1])."""
        x = self.frame.to_network(slices.to(self.device), pixel_mm).expand(-1, 3, -1, -1)
        with autocast(self.device, self.amp):
            logits = self.network(channels_last(x))
        return self.frame.to_slices(logits.float(), tuple(slices.shape[-2:]), pixel_mm).argmax(dim=1, keepdim=True)

    @torch.inference_mode()
    def __call__(self, image: MetaTensor, grid: ImageGrid, case: Case, prompts: None) -> tuple[np.ndarray, list[str]]:
        """Masks (K, *grid.shape) bool on the input grid, one per class, and the class names."""
        volume = AxialSlices(scale_ct(image.as_tensor()), grid.affine)
        run = body_slices(volume.slices) if self.skip_outside_body else None
        labels = volume.predict(lambda x, _: self.labels(x, volume.pixel_mm), 1, self.batch_size, run=run, progress=self.progress)[0]
        return np.stack([labels == k for k in range(1, len(self.class_names) + 1)]), list(self.class_names)
