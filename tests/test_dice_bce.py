"""SAT's segmentation loss: hand-checked values, padded queries ignored, deep-supervision weighting."""

from __future__ import annotations

import math

import torch

from bundles.sat.losses.dice_bce import DeepSupervisedDiceBCE, masked_dice_bce


def test_perfect_and_wrong_predictions():
    target = torch.zeros(1, 1, 4, 4, 4)
    target[..., :2] = 1
    confident = (target * 2 - 1) * 50.0
    assert masked_dice_bce(confident, target, torch.ones(1, 1)).item() < 1e-6
    wrong = -confident
    assert masked_dice_bce(wrong, target, torch.ones(1, 1)).item() > 40.0


def test_zero_logits_hand_computed():
    target = torch.zeros(1, 1, 2, 2, 2)
    target[0, 0, 0] = 1  # 4 of 8 voxels
    loss = masked_dice_bce(torch.zeros(1, 1, 2, 2, 2), target, torch.ones(1, 1)).item()
    dice = 2 * (0.5 * 4) / (0.25 * 8 + 4)  # p = 0.5 everywhere, denominator sum p^2 + sum g^2
    assert math.isclose(loss, (1 - dice) + math.log(2), rel_tol=1e-5)


def test_padded_queries_do_not_count():
    target = torch.zeros(1, 2, 2, 2, 2)
    target[0, 0] = 1
    logits = torch.full((1, 2, 2, 2, 2), 30.0)
    logits[0, 1] = torch.randn(2, 2, 2) * 100  # garbage in the padded query
    mask = torch.tensor([[1.0, 0.0]])
    assert masked_dice_bce(logits, target, mask).item() < 1e-6


def test_deep_supervision_downsamples_target_and_weights_outputs():
    target = torch.zeros(1, 1, 8, 8, 8)
    target[..., :4, :, :] = 1
    good = (target * 2 - 1) * 50
    half = torch.nn.functional.interpolate(good, scale_factor=0.5, mode="nearest")
    bad_half = -half
    loss_fn = DeepSupervisedDiceBCE((1.0, 0.5))
    mixed = loss_fn([good, bad_half], target, torch.ones(1, 1)).item()
    only_bad = masked_dice_bce(bad_half, torch.nn.functional.interpolate(target, scale_factor=0.5), torch.ones(1, 1)).item()
    assert math.isclose(mixed, only_bad / 3, rel_tol=1e-4)
