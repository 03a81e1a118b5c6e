"""A synthetic abdominal CT phantom with labelled organs, for demos and tests that need no patient data.

Geometry is defined in patient terms on the RAS+ world grid (+x = patient's right, +y = anterior,
+z = superior; see CONTRIBUTING.md), then stored in LPS voxel order (voxel axes point to patient left,
posterior, superior) as DICOM CT series usually are, so readers must honour the affine to find the organs.

Anatomy (all sizes relative to the body, which fills about 85 % of the in-plane field of view):
a body outline of soft tissue inside a fat layer, air outside; a vertebral body (not labelled) with the
aorta in front of it; liver and gallbladder on the patient's right, spleen and stomach (with an anterior
air pocket in most seeds) on the left, pancreas across the midline, both kidneys posterior beside the
spine. Each organ is an ellipsoid whose radius is modulated by a smooth random field (sum of three
random plane waves), at a position, size and in-plane angle jittered per seed.

HU values are textbook contrast-enhanced (portal venous) CT values, rounded: air -1000, fat -100, soft
tissue 40, liver 60, spleen 50, kidney cortex 150 / medulla 90, aorta 200, stomach wall/content 20,
pancreas 45, gallbladder 10, vertebral body 400; each organ jittered by up to ±5 HU per seed. The image is
smoothed with a Gaussian of 0.7 mm sigma (partial volume) and then gets white Gaussian noise of 10-20 HU
standard deviation. Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives
identical arrays, different seeds give different phantoms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from bundles.errors import ConfigurationError

__all__ = ["Phantom", "PHANTOM_LEGEND", "make_ct_phantom"]

PHANTOM_LEGEND: dict[int, str] = {
    1: "liver",
    2: "spleen",
    3: "left kidney",
    4: "right kidney",
    5: "aorta",
    6: "stomach",
    7: "pancreas",
    8: "gallbladder",
}
"""Label value -> SAT vocabulary term (``ct_<term>`` in SAT-DS ``terminology_list.json``)."""

_AIR_HU, _FAT_HU, _SOFT_TISSUE_HU, _BONE_HU = -1000.0, -100.0, 40.0, 400.0
_KIDNEY_MEDULLA_HU = 90.0
_ORGAN_JITTER_HU = 5.0
_SMOOTHING_SIGMA_MM = 0.7
_NOISE_STD_HU = (10.0, 20.0)
_MIN_SHAPE = 16
_CENTRE_RAS_MM = (0.0, 20.0, -300.0)
"""World position of the volume centre: an arbitrary scanner-like table position (non-zero origin)."""


@dataclass(frozen=True)
class _Organ:
    """An organ ellipsoid in body-relative units.

    ``centre`` and ``semi_axes`` are fractions of (body half-width, body half-depth, half z extent) along
    (patient right, anterior, superior); ``hu`` is its mean attenuation.
    """

    label: int
    hu: float
    centre: tuple[float, float, float]
    semi_axes: tuple[float, float, float]


_VERTEBRA = _Organ(0, _BONE_HU, (0.0, -0.64, 0.0), (0.17, 0.21, 5.0))
_ORGANS: tuple[_Organ, ...] = (  # painting order: later organs overwrite earlier ones
    _Organ(1, 60.0, (0.42, 0.05, 0.25), (0.4, 0.58, 0.7)),  # liver, patient's right
    _Organ(2, 50.0, (-0.58, -0.15, 0.35), (0.15, 0.28, 0.4)),  # spleen, left posterior
    _Organ(6, 20.0, (-0.3, 0.38, 0.3), (0.22, 0.22, 0.4)),  # stomach, left anterior
    _Organ(7, 45.0, (-0.1, 0.02, 0.0), (0.34, 0.09, 0.18)),  # pancreas, across the midline
    _Organ(3, 150.0, (-0.4, -0.4, -0.12), (0.16, 0.2, 0.4)),  # left kidney
    _Organ(4, 150.0, (0.4, -0.4, -0.2), (0.16, 0.2, 0.4)),  # right kidney, a little lower
    _Organ(8, 10.0, (0.28, 0.45, -0.1), (0.11, 0.11, 0.25)),  # gallbladder, under the liver
)
_AORTA = _Organ(5, 200.0, (-0.08, -0.3, 0.0), (0.075, 0.09, 5.0))  # tube along z, in front of the spine
_KIDNEYS = (3, 4)
_STOMACH = 6
_STOMACH_AIR_DEPTH = 0.3
"""Depth of the stomach's air pocket, as a fraction of its antero-posterior semi-axis: gas rises to the
anterior (non-dependent) side of a supine patient, above a flat air-fluid level."""


@dataclass(frozen=True)
class Phantom:
    """A synthetic CT case.

    Attributes:
        image: int16 HU, shape ``(X, Y, Z)`` in voxel order (LPS storage).
        labels: uint8, shape ``(X, Y, Z)``; 0 background, values as in ``legend``.
        affine: float64 ``(4, 4)`` voxel index -> RAS+ world mm; column norms are the spacing.
        legend: label value -> SAT vocabulary term.
    """

    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    legend: dict[int, str]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm per voxel axis (column norms of ``affine``)."""
        return tuple(float(n) for n in np.linalg.norm(self.affine[:3, :3], axis=0))


def _lps_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Voxel axes towards patient left, posterior, superior; the volume centre at :data:`_CENTRE_RAS_MM`."""
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    centre_index = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    affine[:3, 3] = np.asarray(_CENTRE_RAS_MM) - affine[:3, :3] @ centre_index
    return affine


def _smooth_field(rng: np.random.Generator, points: np.ndarray) -> np.ndarray:
    """A smooth random field in [-1, 1] at ``points`` ``(N, 3)`` mm: the mean of three plane waves.

    Wavelengths 30-70 mm: a few bumps per organ, never a jagged surface.
    """
    directions = rng.normal(size=(3, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wave_numbers = 2.0 * np.pi / rng.uniform(30.0, 70.0, size=3)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=3)
    return np.sin(points @ (directions * wave_numbers[:, None]).T + phases).mean(axis=1)


def _ellipsoid(
    rng: np.random.Generator, organ: _Organ, axes: tuple[np.ndarray, np.ndarray, np.ndarray], body: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mask and normalised radius of a deformed, jittered, in-plane rotated ellipsoid.

    ``axes`` are the broadcastable patient coordinates (right, anterior, superior) in mm and ``body`` the
    half extents (half-width, half-depth, half z extent) in mm. Returns ``(mask, radius)``, both ``(X, Y, Z)``;
    the radius is 0 at the centre and about 1 at the surface.
    """
    centre = (np.asarray(organ.centre) + rng.uniform(-0.04, 0.04, size=3)) * body
    semi = np.asarray(organ.semi_axes) * rng.uniform(0.88, 1.12, size=3) * body
    angle = rng.uniform(-0.3, 0.3)
    du, dv, dw = (axis - c for axis, c in zip(axes, centre))
    along = (du * math.cos(angle) + dv * math.sin(angle)) / semi[0]
    across = (-du * math.sin(angle) + dv * math.cos(angle)) / semi[1]
    radius = np.sqrt(along**2 + across**2 + (dw / semi[2]) ** 2).astype(np.float32)
    amplitude = 0.15
    candidates = np.nonzero(radius <= 1.0 + amplitude)
    points = np.stack([np.broadcast_to(a, radius.shape)[candidates] for a in axes], axis=1)
    mask = np.zeros(radius.shape, dtype=bool)
    mask[candidates] = radius[candidates] <= 1.0 + amplitude * _smooth_field(rng, points)
    return mask, radius


def _check_geometry(shape: Sequence[int], spacing: Sequence[float]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    if len(shape) != 3 or any(int(n) != n or n < _MIN_SHAPE for n in shape):
        raise ConfigurationError(f"phantom shape {tuple(shape)} must be three integers >= {_MIN_SHAPE}")
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ConfigurationError(f"phantom spacing {tuple(spacing)} must be three positive sizes in mm")
    return tuple(int(n) for n in shape), tuple(float(s) for s in spacing)


def make_ct_phantom(
    seed: int, shape: Sequence[int] = (192, 160, 48), spacing: Sequence[float] = (0.8, 0.8, 3.0)
) -> Phantom:
    """Build the abdominal CT phantom for ``seed``.

    Args:
        seed: random seed (numpy ``default_rng``); same seed, same phantom.
        shape: voxel grid ``(X, Y, Z)``, each at least 16.
        spacing: voxel size in mm along ``(X, Y, Z)``.

    Returns:
        A :class:`Phantom` whose labels contain every entry of :data:`PHANTOM_LEGEND`.

    Raises:
        ConfigurationError: bad shape or spacing, or a grid too coarse to hold every organ.
    """
    shape, spacing = _check_geometry(shape, spacing)
    rng = np.random.default_rng(seed)
    affine = _lps_affine(shape, spacing)
    index = [np.arange(n, dtype=np.float32) for n in shape]
    world = [affine[d, d] * index[d] + affine[d, 3] - _CENTRE_RAS_MM[d] for d in range(3)]
    right, anterior, superior = world[0][:, None, None], world[1][None, :, None], world[2][None, None, :]
    extent = np.asarray(shape) * np.asarray(spacing)
    half = np.array([0.43 * extent[0], 0.42 * extent[1], extent[2] / 2.0]) * [*rng.uniform(0.92, 1.0, 2), 1.0]
    body_centre = np.append(rng.uniform(-3.0, 3.0, size=2), 0.0)
    axes = (right - body_centre[0], anterior - body_centre[1], superior)
    image = np.full(shape, _AIR_HU, dtype=np.float32)
    body_radius = np.broadcast_to(np.sqrt((axes[0] / half[0]) ** 2 + (axes[1] / half[1]) ** 2), shape)
    fat_fraction = 1.0 - rng.uniform(4.0, 7.0) / min(half[:2])
    image[body_radius <= 1.0] = _FAT_HU
    interior = body_radius <= fat_fraction
    image[interior] = _SOFT_TISSUE_HU
    labels = np.zeros(shape, dtype=np.uint8)
    bone, _ = _ellipsoid(rng, _VERTEBRA, axes, half)
    image[bone & interior] = _BONE_HU
    for organ in (*_ORGANS, _AORTA):
        mask, radius = _ellipsoid(rng, organ, axes, half)
        mask &= interior
        hu = organ.hu + rng.uniform(-_ORGAN_JITTER_HU, _ORGAN_JITTER_HU)
        image[mask] = hu
        labels[mask] = organ.label
        if organ.label in _KIDNEYS:
            image[mask & (radius < 0.65)] = _KIDNEY_MEDULLA_HU
        if organ.label == _STOMACH and mask.any() and rng.random() < 0.7:
            depth = np.broadcast_to(axes[1], shape)
            level = depth[mask].max() - _STOMACH_AIR_DEPTH * organ.semi_axes[1] * half[1]
            image[mask & (depth > level)] = _AIR_HU
    image = gaussian_filter(image, sigma=[_SMOOTHING_SIGMA_MM / s for s in spacing])
    image += rng.normal(0.0, rng.uniform(*_NOISE_STD_HU), size=shape).astype(np.float32)
    missing = [name for value, name in PHANTOM_LEGEND.items() if not (labels == value).any()]
    if missing:
        raise ConfigurationError(f"phantom grid {shape} at {spacing} mm is too coarse to hold {missing}")
    hu = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    return Phantom(image=hu, labels=labels, affine=affine, legend=dict(PHANTOM_LEGEND))
