"""SAM-UNet's predictor for the core segmentation job: every prompted axial slice, one mask per object.

The image is windowed to 8 bit (:func:`~bundles.sam_unet.preprocessing.to_uint8`), cut into axial slices on
its own grid (:class:`~bundles.inferers.axial_slices.AxialSlices`), and each slice any object prompts is
encoded once (batched) and kept, so several objects on one slice cost one encoder pass (segment-anything's
``SamPredictor`` pattern). Each object's prompts are moved to the slice's axes and the network's input
(:class:`~bundles.inferers.slice_frame.SliceFrame` ``"longest_side"``), decoded, brought back to the slice and
thresholded at logit 0; the stacked slices go back onto the input grid exactly.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from monai.data import MetaTensor
from tqdm.auto import tqdm

from bundles.inferers.axial_slices import AxialSlices
from bundles.inferers.slice_frame import SliceFrame
from bundles.io.cases import Case
from bundles.io.grid import ImageGrid
from bundles.io.reference_masks import load_reference_masks
from bundles.networks.sam_unet import SAMUNet
from bundles.precision import autocast, channels_last, prepare_for_inference, resolve_device
from bundles.progress import show_progress
from bundles.sam_unet.boxes import box_from_mask
from bundles.sam_unet.preprocessing import normalize, to_uint8
from bundles.sam_unet.prompts import BoxPrompts

__all__ = ["PromptedSlicePredictor"]

#: One slice's prompt for one object: (box (4,) or None, points (N, 2), labels (N,)) in slice pixels (x, y).
SlicePrompt = tuple[np.ndarray | None, np.ndarray, np.ndarray]


class PromptedSlicePredictor:
    """The :class:`bundles.engines.segmentation_job.Predictor` of SAM-UNet.

    Args:
        network: a :class:`SAMUNet` with loaded weights.
        device, amp: where and in which precision it runs.
        batch_size: slices per encoder pass.
        modality: the modality of cases that give none ("ct": the soft-tissue window; anything else:
            percentile scaling, see :func:`~bundles.sam_unet.preprocessing.to_uint8`).
        progress: progress bar over slice batches.
    """

    def __init__(self, network: SAMUNet, device: str = "auto", amp: bool = False, batch_size: int = 8, modality: str = "ct",
                 progress: bool = True):
        self.device = resolve_device(device)
        self.network = prepare_for_inference(network, self.device)
        self.frame = SliceFrame(network.img_size, "longest_side")
        self.amp = amp
        self.batch_size = batch_size
        self.modality = modality
        self.progress = progress

    def _prompts(self, slices: AxialSlices, grid: ImageGrid, case: Case, prompts: BoxPrompts) -> tuple[list[str], list[dict[int, SlicePrompt]]]:
        names: list[str] = []
        per_object: list[dict[int, SlicePrompt]] = []
        none = (np.empty((0, 2), np.float32), np.empty((0,), np.int64))
        if prompts.from_mask:
            names = list(dict.fromkeys(case.legend.values()))
            references = load_reference_masks(case.mask, case.legend, names, grid)
            for reference in AxialSlices(references.astype(np.float32), grid.affine).slices.numpy() > 0.5:
                boxes = {s: box_from_mask(reference[..., s]) for s in range(reference.shape[-1])}
                per_object.append({s: (box, *none) for s, box in boxes.items() if box is not None})
            return names, per_object
        for obj in prompts.objects:
            names.append(obj.name)
            by_slice: dict[int, SlicePrompt] = {}
            if obj.box is not None:
                corners = slices.voxels_to_slices(obj.box)
                low, high = corners.min(0), corners.max(0)
                box = np.array([low[1], low[0], high[1], high[0]], dtype=np.float32)  # (x = A, y = R)
                for s in range(int(round(low[2])), int(round(high[2])) + 1):
                    by_slice[s] = (box, *none)
            points = slices.voxels_to_slices(obj.points) if len(obj.points) else np.empty((0, 3))
            grouped: dict[int, list[int]] = defaultdict(list)
            for i, p in enumerate(points):
                grouped[int(round(p[2]))].append(i)
            for s, rows in grouped.items():
                box = by_slice.get(s, (None,))[0]
                xy = points[rows][:, [1, 0]].astype(np.float32)
                by_slice[s] = (box, xy, np.asarray([obj.labels[i] for i in rows], dtype=np.int64))
            per_object.append(by_slice)
        return names, per_object

    def _encode(self, rgb: torch.Tensor, wanted: list[int], pixel_mm: tuple[float, float]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        cache = {}
        batches = [wanted[i : i + self.batch_size] for i in range(0, len(wanted), self.batch_size)]
        for batch in tqdm(batches, desc="slices", unit="batch", disable=not show_progress(self.progress)):
            x = rgb[..., batch].permute(3, 0, 1, 2).to(self.device)
            x = channels_last(self.frame.to_network(normalize(x), pixel_mm))
            with autocast(self.device, self.amp):
                embedding, multi_scale = self.network.encode(x)
            for i, s in enumerate(batch):
                cache[s] = (embedding[i : i + 1], multi_scale[i : i + 1])
        return cache

    def _decode(self, cache: dict, s: int, prompt: SlicePrompt, shape: tuple[int, int], pixel_mm: tuple[float, float]) -> np.ndarray:
        box, xy, labels = prompt
        to_net = lambda c: self.frame.to_network_coords(torch.as_tensor(c, device=self.device), shape, pixel_mm)[None]  # noqa: E731
        boxes = to_net(box.reshape(2, 2)).reshape(1, 4) if box is not None else None
        points = to_net(xy) if len(xy) else None
        point_labels = torch.as_tensor(labels, device=self.device)[None] if len(xy) else None
        embedding, multi_scale = cache[s]
        with autocast(self.device, self.amp):
            logits = self.network.decode(embedding, multi_scale, boxes, points, point_labels)
        return (self.frame.to_slices(logits.float(), shape, pixel_mm)[0, 0] > 0).cpu().numpy()

    @torch.inference_mode()
    def __call__(self, image: MetaTensor, grid: ImageGrid, case: Case, prompts: BoxPrompts) -> tuple[np.ndarray, list[str]]:
        """Masks (K, *grid.shape) bool on the input grid, one per object, and the object names."""
        slices = AxialSlices(to_uint8(image.as_tensor(), case.modality or self.modality).float(), grid.affine)
        names, per_object = self._prompts(slices, grid, case, prompts)
        rgb = slices.slices.expand(3, -1, -1, -1)
        wanted = sorted({s for by_slice in per_object for s in by_slice})
        cache = self._encode(rgb, wanted, slices.pixel_mm)
        shape = tuple(slices.slices.shape[1:3])
        volumes = np.zeros((len(names), *slices.slices.shape[1:]), dtype=np.float32)
        for k, by_slice in enumerate(per_object):
            for s, prompt in by_slice.items():
                volumes[k, ..., s] = self._decode(cache, s, prompt, shape, slices.pixel_mm)
        return slices.to_input_axes(volumes) > 0.5, names
