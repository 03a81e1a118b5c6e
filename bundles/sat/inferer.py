"""Whole-image inference for text-prompted 3D segmentation (SAT), returned on the input's own grid.

Pipeline (official SAT inference.py): orientation -> resampling to the model spacing -> crop to the bounding box of
voxels > 0 (raw intensities, margin 0) -> per-modality normalisation -> sliding windows over the model's
crop (stride half a window, Gaussian blending with sigma = window / 8) with all prompts of a window decoded
from one backbone pass -> sigmoid -> probabilities resampled back onto the INPUT grid through world
coordinates -> threshold. Unlike the official code, outputs are on the input grid, not the preprocessed one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference

from bundles.engines.stage_times import stage
from bundles.inferers.on_grid import MasksOnGrid
from bundles.io.grid import ImageGrid
from bundles.precision import autocast, channels_last, prepare_for_inference, resolve_device
from bundles.progress import show_progress
from bundles.sat.preprocessing import SATPreprocessing
from bundles.sat.tiling import tiling_for

__all__ = ["TextPromptedInferer"]


class TextPromptedInferer:
    """Segment a whole image with a network of the SAT contract ``network(image, queries) -> logits``.

    Args:
        network: takes ``(B, 1, X, Y, Z)`` normalised crops and ``(B, Q, D)`` query embeddings, returns
            ``(B, Q, X, Y, Z)`` logits.
        roi_size: sliding-window size in voxels of the preprocessed grid (official 288x288x96).
        spacing: model spacing in mm along the RAS axes (official 1x1x3).
        orientation: axis codes of the preprocessed grid (official "RAS").
        crop_foreground: crop to voxels > 0 before inference, as the official pipeline does.
        sw_batch_size: windows per forward pass.
        overlap: window overlap fraction (official 0.5).
        threshold: probability above which a voxel belongs to the mask (official 0.5).
        device: where the network runs; "auto" picks CUDA when available. Blending happens on the CPU.
        amp: autocast (bfloat16 on CPU, float16 on CUDA) with channels_last_3d layout (the fast path).
        bfloat16_weights: cast the weights to bfloat16 (needed for SAT-Pro on a 24 GB machine without GPU);
            implies autocast, since bfloat16 weights cannot take float32 activations.
        keep_largest_component: keep only the largest connected component of each mask
            (:class:`bundles.inferers.on_grid.MasksOnGrid`); off in the official pipeline, which has no post-processing.
        skip_air_windows: do not run the network on a window holding only air (every voxel at the normalised
            image's minimum: below -500 HU in CT, below the 0.5th percentile otherwise, so nothing SAT
            distinguishes); its probabilities are 0. The official code runs every window.
        progress: show a progress bar over windows.
        tiling: ``standard`` (the official windows, default) or ``fit`` (fewer, larger windows without
            overlap; opt-in, masks differ: :mod:`bundles.sat.tiling`).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        roi_size: Sequence[int],
        *,
        spacing: Sequence[float] = (1.0, 1.0, 3.0),
        orientation: str = "RAS",
        crop_foreground: bool = True,
        sw_batch_size: int = 1,
        overlap: float = 0.5,
        threshold: float = 0.5,
        device: str | torch.device | None = "auto",
        amp: bool = True,
        bfloat16_weights: bool = False,
        keep_largest_component: bool = False,
        skip_air_windows: bool = True,
        progress: bool = True,
        tiling: str = "standard",
    ):
        self.device = resolve_device(device)
        self.network = prepare_for_inference(network, self.device, bfloat16_weights=bfloat16_weights)
        self.roi_size = tuple(int(s) for s in roi_size)
        self.preprocessing = SATPreprocessing(spacing, orientation, crop_foreground)
        self.sw_batch_size = sw_batch_size
        self.overlap = overlap
        self.to_masks = MasksOnGrid(threshold, keep_largest_component)
        self.amp = amp or bfloat16_weights
        self.skip_air_windows = skip_air_windows
        self.progress = progress
        self.tiling = tiling
        tiling_for(tiling, self.roi_size, self.roi_size, 1)  # an unknown kind fails here, not at the first image
        self.windows_run = self.windows_skipped = 0  # of the last image (what skipping saved)

    @torch.inference_mode()
    def probabilities(self, image: MetaTensor, queries: torch.Tensor) -> torch.Tensor:
        """Sigmoid probabilities ``(Q, x, y, z)`` (float32, CPU) for a preprocessed ``(1, x, y, z)`` image."""
        queries = queries.to(self.device)
        air = float(image.min()) if self.skip_air_windows else -np.inf
        self.windows_run = self.windows_skipped = 0

        def run(windows: torch.Tensor) -> torch.Tensor:
            batch_queries = queries.unsqueeze(0).expand(windows.shape[0], -1, -1)
            with autocast(self.device, self.amp):
                logits = self.network(channels_last(windows), batch_queries)
            return torch.sigmoid(logits.float())

        def predictor(window: torch.Tensor) -> torch.Tensor:
            body = window.flatten(1).amax(dim=1) > air
            ran = int(body.sum())
            self.windows_run, self.windows_skipped = self.windows_run + ran, self.windows_skipped + window.shape[0] - ran
            if ran == window.shape[0]:
                return run(window)
            out = torch.zeros((window.shape[0], queries.shape[0], *window.shape[2:]), device=window.device)
            if ran:
                out[body] = run(window[body])
            return out

        divisor = getattr(self.network, "divisor", 1)
        window, overlap = tiling_for(self.tiling, image.shape[1:], self.roi_size, divisor, self.overlap)
        probs = sliding_window_inference(
            image.as_tensor().unsqueeze(0),
            roi_size=window,
            sw_batch_size=self.sw_batch_size,
            predictor=predictor,
            overlap=overlap,
            mode="gaussian",
            sigma_scale=0.125,
            sw_device=self.device,
            device="cpu",
            progress=show_progress(self.progress),
        )
        return probs[0]

    def __call__(self, image: MetaTensor, grid: ImageGrid, queries: torch.Tensor, modality: str) -> np.ndarray:
        """Masks ``(Q, *grid.shape)`` (bool) on the input grid for ``image`` ``(1, X, Y, Z)`` read on ``grid``
        and ``queries`` ``(Q, D)``. Stages ``preprocess``, ``network`` (sliding windows, blending), ``resample``
        (onto the input grid, threshold) are timed for the job's ``timings.csv``."""
        with stage("preprocess"):
            pre, _ = self.preprocessing(image, modality)
        with stage("network"):
            probabilities = self.probabilities(pre, queries)
        with stage("resample"):
            return self.to_masks(probabilities, pre.affine, grid)
