"""Workaround for highdicom 0.22 under NumPy 2.

highdicom 0.22 (the last release for pydicom 2, which MONAI Label needs) compares pixel dtypes with
``np.float_``, removed in NumPy 2.0, so building any Segmentation raises ``AttributeError``. Fixed upstream in
highdicom PR #295 (first released in 0.23, which requires pydicom 3). The alias is provided only while a
highdicom call runs and removed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

__all__ = ["numpy_float_alias"]


@contextmanager
def numpy_float_alias() -> Iterator[None]:
    """Temporarily define ``np.float_`` as ``np.float64`` when NumPy lacks it (NumPy >= 2)."""
    if "float_" in np.__dict__:
        yield
        return
    np.float_ = np.float64
    try:
        yield
    finally:
        del np.float_
