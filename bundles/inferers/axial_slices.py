"""2D models on volumes: run a slice model over the axial slices of a volume, outputs on the volume's own grid.

The volume is reoriented by flips and axis permutations only (``nibabel.orientations``: no resampling, so
the way back is exact) to the closest orientation whose axial slices are the radiological display: rows
from anterior to posterior, columns from the patient's right to left (axis codes P, L, S). That is how 2D
models are trained: SAMed's Synapse slices (the NIfTI's (H, W, D) arrays transposed to (D, W, H), stored
right-to-left and anterior-to-posterior) and SA-Med2D / MedSAM images (SimpleITK arrays of LPS volumes).
Its slices along S are passed to the model in batches, and the stacked outputs are oriented back onto the
input's voxel axes. A one-slice volume (a 2D image read as ``(X, Y, 1)``) is oriented the same way when
its affine makes the third axis S; otherwise (a coronal 2D image, say) it is one slice on its own axes.

The slice model sees (B, C, P, L) tensors: rows anterior -> posterior (P), columns right -> left (L);
MONAI's ``SliceInferer`` works the same way on a fixed axis but cannot skip slices or tell the model which
slices it gets, which box-prompted models need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform
from tqdm.auto import tqdm

from bundles.progress import show_progress

__all__ = ["SliceModel", "AxialSlices"]

_IDENTITY = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
#: Axis codes of the slices' array: rows towards posterior, columns towards the patient's left, then superior.
DISPLAY_AXES = ("P", "L", "S")

#: ``(slices (B, C, P, L), their indices along S) -> outputs (B, K, P, L)``.

SliceModel = Callable[[torch.Tensor, Sequence[int]], torch.Tensor]


class AxialSlices:
    """The axial slices of one volume.

    Args:
        volume: (C, X, Y, Z) on the file's voxel axes (tensor or array).
        affine: its voxel -> RAS affine (4 x 4).

    Attributes:
        slices: (C, P, L, S) float tensor, the volume in the closest :data:`DISPLAY_AXES` orientation.
        spacing: voxel size along P, L, S in mm (column norms of the affine).
    """

    def __init__(self, volume: torch.Tensor | np.ndarray, affine: torch.Tensor | np.ndarray):
        array = np.asarray(volume.detach().cpu() if isinstance(volume, torch.Tensor) else volume, dtype=np.float32)
        spatial = array.shape[1:]
        self._input_shape = tuple(int(n) for n in spatial)
        own = io_orientation(np.asarray(affine, dtype=np.float64))
        if spatial[2] == 1 and own[2, 0] != 2:
            self._ornt = self._back = _IDENTITY.copy()  # a 2D image that is no axial slice: its own axes
        else:
            display = axcodes2ornt(DISPLAY_AXES)
            self._ornt, self._back = ornt_transform(own, display), ornt_transform(display, own)
        self.slices = torch.from_numpy(np.ascontiguousarray(np.stack([apply_orientation(c, self._ornt) for c in array])))
        spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
        self.spacing = tuple(float(spacing[int(np.flatnonzero(self._ornt[:, 0] == axis)[0])]) for axis in range(3))

    @property
    def pixel_mm(self) -> tuple[float, float]:
        """Pixel size of a slice along its rows (P) and columns (L), in mm."""
        return self.spacing[0], self.spacing[1]

    @property
    def count(self) -> int:
        """Number of axial slices (S)."""
        return self.slices.shape[-1]

    def voxels_to_slices(self, voxels: np.ndarray) -> np.ndarray:
        """Voxel indices (N, 3) of the input volume -> indices (N, 3) along (P, L, S) of :attr:`slices`."""
        voxels = np.asarray(voxels, dtype=np.float64).reshape(-1, 3)
        shape = self._input_shape
        out = np.empty_like(voxels)
        for axis, (target, flip) in enumerate(self._ornt.astype(int)):
            out[:, target] = voxels[:, axis] if flip == 1 else shape[axis] - 1 - voxels[:, axis]
        return out

    def to_input_axes(self, outputs: torch.Tensor | np.ndarray) -> np.ndarray:
        """(K, P, L, S) outputs -> (K, X, Y, Z) on the input's voxel axes (exact: flips and permutations)."""
        array = np.asarray(outputs.detach().cpu() if isinstance(outputs, torch.Tensor) else outputs)
        return np.ascontiguousarray(np.stack([apply_orientation(c, self._back) for c in array]))

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
