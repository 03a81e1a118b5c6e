"""Random per-organ intensity shifts (simulated contrast uptake): one offset per label value, inside the range,
background untouched, seeded by the sampler's generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bundles.errors import ConfigurationError
from bundles.transforms.organ_intensity import RandOrganIntensityShift
from bundles.transforms.reseed import reseed


def _image_and_label() -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.linspace(0, 1, 64 * 64).reshape(1, 64, 64)
    label = torch.zeros(1, 64, 64, dtype=torch.int64)
    label[:, 5:20, 5:20], label[:, 30:50, 30:60] = 1, 4
    return image, label


def test_each_label_gets_one_offset_in_range_and_background_is_untouched():
    image, label = _image_and_label()
    shift = RandOrganIntensityShift(offsets=(0.1, 0.3), prob=1.0)
    shift.set_random_state(seed=0)
    out = shift(image, label)
    delta = out - image
    assert torch.equal(delta[label == 0], torch.zeros_like(delta[label == 0]))
    offsets = {}
    for value in (1, 4):
        inside = delta[label == value]
        assert torch.allclose(inside, inside[0].expand_as(inside), atol=1e-6)
        assert 0.1 <= float(inside[0]) <= 0.3
        offsets[value] = float(inside[0])
    assert offsets[1] != offsets[4]  # independent draws per organ
    assert torch.equal(image, _image_and_label()[0])  # the input is not modified


def test_prob_zero_changes_nothing_and_the_sampler_seed_fixes_the_draws():
    image, label = _image_and_label()
    never = RandOrganIntensityShift(offsets=(0.1, 0.3), prob=0.0)
    assert torch.equal(never(image, label), image)
    outs = []
    for _ in range(2):
        shift = RandOrganIntensityShift(offsets=(-0.2, 0.2), prob=0.5)
        rng = np.random.default_rng(11)
        draws = []
        for _ in range(5):
            reseed((shift,), rng)
            draws.append(shift(image, label))
        outs.append(torch.stack(draws))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0][0], outs[0][1])  # a new draw per sample


@pytest.mark.parametrize("offsets, prob", [((0.3, 0.1), 0.5), ((0.1,), 0.5), ((0.0, 0.1), 1.5)])
def test_bad_settings_are_refused(offsets, prob):
    with pytest.raises(ConfigurationError):
        RandOrganIntensityShift(offsets=offsets, prob=prob)


def test_shape_mismatch_is_refused():
    image, label = _image_and_label()
    with pytest.raises(ConfigurationError, match="one shape"):
        RandOrganIntensityShift(offsets=(0.0, 0.1))(image, label[:, :32])
