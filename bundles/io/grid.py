"""The voxel grid of an input image: what every output must be written back onto."""

from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np

__all__ = ["ImageGrid", "RAS_LABELS", "sub_grid_affine"]

#: Axis-code letters of the RAS+ world that our affines map to (MONAI's classic default, stated explicitly
#: as ``Orientation(labels=...)``).
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


@dataclass(frozen=True, eq=False)
class ImageGrid:
    """Shape and geometry of a 3D image as read from disk.

    Attributes:
        shape: number of voxels along the three voxel index axes ``(X, Y, Z)``.
        affine: 4x4 float64 matrix mapping voxel indices ``(i, j, k, 1)`` to RAS+ world millimetres
            (nibabel/MONAI convention). Stored as a read-only copy.
        source: the file or folder the grid was read from.
        nifti_header: the input's own NIfTI header (NIfTI inputs only), so outputs can reuse it verbatim.
        dicom_files: for a DICOM series, the slice files in the order of the volume's third axis.

    Two grids are equal when all fields are equal; affines are compared exactly (``np.array_equal``).

    Raises:
        ValueError: ``shape`` is not three positive integers or ``affine`` is not a finite 4x4 matrix.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    source: str
    nifti_header: nib.Nifti1Header | None = None
    dicom_files: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"ImageGrid shape must be three positive sizes, got {self.shape}")
        affine = np.array(self.affine, dtype=np.float64, copy=True)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise ValueError(f"ImageGrid affine must be a finite 4x4 matrix, got shape {affine.shape}")
        affine.setflags(write=False)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "source", str(self.source))
        object.__setattr__(self, "dicom_files", tuple(str(f) for f in self.dicom_files))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each voxel axis: the column norms of the affine's 3x3 part."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def orientation(self) -> str:
        """Axis codes of the voxel axes in world space, e.g. ``"LPS"`` (nibabel ``aff2axcodes``)."""
        return "".join(nib.aff2axcodes(self.affine))

    def same_geometry(self, other: ImageGrid) -> bool:
        """True when ``other`` has the same shape and exactly the same affine (source and headers ignored)."""
        return self.shape == other.shape and np.array_equal(self.affine, other.affine)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageGrid):
            return NotImplemented
        headers_equal = (self.nifti_header is None and other.nifti_header is None) or (
            self.nifti_header is not None
            and other.nifti_header is not None
            and self.nifti_header.binaryblock == other.nifti_header.binaryblock
        )
        return (
            self.same_geometry(other)
            and self.source == other.source
            and self.dicom_files == other.dicom_files
            and headers_equal
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.affine.tobytes(), self.source, self.dicom_files))


def sub_grid_affine(affine: np.ndarray, start) -> np.ndarray:
    """Voxel -> RAS mm affine of the sub-grid of ``affine``'s grid whose voxel 0 is voxel ``start`` (3
    numbers, may be negative or fractional) of the parent: ``affine @ translation(start)``."""
    shift = np.eye(4)
    shift[:3, 3] = np.asarray(start, dtype=np.float64)
    return np.asarray(affine, dtype=np.float64) @ shift
