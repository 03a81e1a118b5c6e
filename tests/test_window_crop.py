"""The one zero-padded window crop (training samplers, window sessions) on NumPy and torch alike."""

from __future__ import annotations

import numpy as np
import torch

from bundles.transforms.window_crop import crop_window


def test_a_window_inside_is_the_slice_and_one_hanging_over_is_zero_padded():
    volume = np.arange(2 * 4 * 5 * 6, dtype=np.int16).reshape(2, 4, 5, 6) + 1
    np.testing.assert_array_equal(crop_window(volume, (1, 0, 2), (2, 3, 4)), volume[:, 1:3, 0:3, 2:6])
    over = crop_window(volume, (-1, 3, 4), 3)
    assert over.shape == (2, 3, 3, 3) and over.dtype == np.int16
    np.testing.assert_array_equal(over[:, 1:, :2, :2], volume[:, :2, 3:, 4:])
    assert not over[:, 0].any() and not over[:, :, 2:].any() and not over[:, :, :, 2:].any()
    assert not crop_window(volume, (9, 0, 0), 3).any() and not crop_window(volume, (0, -7, 0), 3).any()  # misses entirely


def test_torch_tensors_keep_their_type_and_give_the_numpy_answer():
    volume = np.random.default_rng(0).normal(size=(1, 7, 6, 5)).astype(np.float32)
    for start in [(0, 0, 0), (-2, 3, 1), (5, -1, 4), (10, 10, 10)]:
        got = crop_window(torch.from_numpy(volume), start, (4, 4, 4))
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), crop_window(volume, start, 4))
