"""2D models on volumes: run a slice model over the axial slices of a volume, outputs on the volume's own grid.

The volume is reoriented to the closest RAS orientation by flips and axis permutations only
(``nibabel.orientations.io_orientation``: no resampling, so the way back is exact), its slices along the
S axis are passed to the model in batches, and the stacked outputs are oriented back onto the input's voxel
axes. A one-slice volume (a 2D image read as ``(X, Y, 1)``) is one slice whatever its affine says.

The slice model sees (B, C, R, A) tensors: first axis towards the patient's right -> left (R), second
posterior -> anterior (A); MONAI's ``SliceInferer`` works the same way on a fixed axis but cannot skip
slices or tell the model which slices it gets, which box-prompted models need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from nibabel.orientations import apply_orientation, io_orientation, ornt_transform
from tqdm.auto import tqdm

from bundles.progress import show_progress

__all__ = ["SliceModel", "AxialSlices"]

#: ``(slices (B, C, R, A), their indices along S) -> outputs (B, K, R, A)``.
_IDENTITY = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)

SliceModel = Callable[[torch.Tensor, Sequence[int]], torch.Tensor]


class AxialSlices:
    """The axial slices of one volume.

    Args:
        volume: (C, X, Y, Z) on the file's voxel axes (tensor or array).
        affine: its voxel -> RAS affine (4 x 4).

    Attributes:
        slices: (C, R, A, S) float tensor, the volume in the closest RAS orientation.
        spacing: voxel size along R, A, S in mm (column norms of the affine).
    """

    def __init__(self, volume: torch.Tensor | np.ndarray, affine: torch.Tensor | np.ndarray):
        array = np.asarray(volume.detach().cpu() if isinstance(volume, torch.Tensor) else volume, dtype=np.float32)
        spatial = array.shape[1:]
        self._input_shape = tuple(int(n) for n in spatial)
        if spatial[2] == 1:
            self._ornt = _IDENTITY.copy()  # a 2D image: its own axes
        else:
            self._ornt = io_orientation(np.asarray(affine, dtype=np.float64))
        self.slices = torch.from_numpy(np.ascontiguousarray(np.stack([apply_orientation(c, self._ornt) for c in array])))
        spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
        self.spacing = tuple(float(spacing[int(np.flatnonzero(self._ornt[:, 0] == axis)[0])]) for axis in range(3))

    @property
    def pixel_mm(self) -> tuple[float, float]:
        """Pixel size of a slice along R and A, in mm."""
        return self.spacing[0], self.spacing[1]

    @property
    def count(self) -> int:
        """Number of axial slices (S)."""
        return self.slices.shape[-1]

    def voxels_to_slices(self, voxels: np.ndarray) -> np.ndarray:
        """Voxel indices (N, 3) of the input volume -> indices (N, 3) along (R, A, S) of :attr:`slices`."""
        voxels = np.asarray(voxels, dtype=np.float64).reshape(-1, 3)
        shape = self._input_shape
        out = np.empty_like(voxels)
        for axis, (target, flip) in enumerate(self._ornt.astype(int)):
            out[:, target] = voxels[:, axis] if flip == 1 else shape[axis] - 1 - voxels[:, axis]
        return out

    def to_input_axes(self, ras: torch.Tensor | np.ndarray) -> np.ndarray:
        """(K, R, A, S) outputs -> (K, X, Y, Z) on the input's voxel axes (exact: flips and permutations)."""
        array = np.asarray(ras.detach().cpu() if isinstance(ras, torch.Tensor) else ras)
        back = ornt_transform(_IDENTITY, self._ornt)
        return np.ascontiguousarray(np.stack([apply_orientation(c, back) for c in array]))

    def predict(
        self,
        model: SliceModel,
        channels: int,
        batch_size: int = 8,
        run: Sequence[bool] | None = None,
        fill: Sequence[float] | float = 0.0,
        progress: bool = True,
    ) -> np.ndarray:
        """Run ``model`` over the slices, ``batch_size`` at a time -> (channels, X, Y, Z) on the input's axes.

        Args:
            model: :data:`SliceModel`; returns ``channels`` maps per slice (float, any device).
            channels: K.
            batch_size: slices per call.
            run: per slice along S, whether to run the model; the others get ``fill`` (e.g. background
                outside the body). ``None`` runs every slice.
            fill: per-channel value of the slices not run.
            progress: progress bar over batches (terminals only).
        """
        todo = [s for s in range(self.count) if run is None or run[s]]
        out = torch.empty((channels, *self.slices.shape[1:]), dtype=torch.float32)
        out[:] = torch.as_tensor(fill, dtype=torch.float32).reshape(-1, 1, 1, 1) if not np.isscalar(fill) else float(fill)
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        for batch in tqdm(batches, desc="slices", unit="batch", disable=not show_progress(progress)):
            x = self.slices[..., batch].permute(3, 0, 1, 2)
            out[..., batch] = model(x, batch).float().cpu().permute(1, 2, 3, 0)
        return self.to_input_axes(out)
