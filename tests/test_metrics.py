"""Dice, NSD and HD95 against hand-computed values, and the empty-mask convention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bundles.errors import BundleInputError, ConfigurationError
from bundles.metrics.segmentation import (
    METRIC_COLUMNS,
    dice,
    evaluate_case,
    hausdorff95,
    normalized_surface_dice,
    worst_case_distance,
)

SHAPE = (10, 10, 10)
SPACING = (1.0, 1.0, 3.0)
DIAGONAL = math.sqrt(10**2 + 10**2 + 30**2)


def _box(x: slice, y: slice, z: slice) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[x, y, z] = True
    return mask


# A 3 x 3 x 4 rod. Its surface (mask minus 6-connected erosion) is the 8-voxel ring of every slice plus the
# centre voxel of both end slices: 8 * 4 + 2 = 34 voxels.
ROD = _box(slice(2, 5), slice(2, 5), slice(2, 6))


def test_dice_of_overlapping_boxes():
    # 36 voxels each; shifted by one slice they share 3 x 3 x 3 = 27: Dice = 2 * 27 / 72.
    shifted = _box(slice(2, 5), slice(2, 5), slice(3, 7))
    assert dice(ROD, shifted) == pytest.approx(0.75)
    # 2 x 2 x 2 = 8 voxels inside a 4 x 4 x 4 = 64 box: 2 * 8 / 72.
    assert dice(_box(slice(0, 2), slice(0, 2), slice(0, 2)), _box(slice(0, 4), slice(0, 4), slice(0, 4))) == (
        pytest.approx(16 / 72)
    )


def test_nsd_shift_along_z_exceeds_one_mm_tolerance():
    # Shift by one slice = 3 mm. Of the 34 surface voxels of each rod, the rings of the 3 shared slices
    # coincide (24), and the centre of the end cap inside the other rod lies 1 mm (in plane) from that rod's
    # ring (1): 25 of 34 within 1 mm. The other ring and cap are 3 mm away.
    shifted = _box(slice(2, 5), slice(2, 5), slice(3, 7))
    assert normalized_surface_dice(ROD, shifted, SPACING, tolerance_mm=1.0) == pytest.approx(25 / 34, abs=1e-6)
    # A 3 mm tolerance accepts every surface voxel.
    assert normalized_surface_dice(ROD, shifted, SPACING, tolerance_mm=3.0) == pytest.approx(1.0)


def test_nsd_shift_along_x_within_tolerance():
    # A one-voxel shift along x is 1 mm: every surface voxel is within the (inclusive) 1 mm tolerance ...
    shifted = _box(slice(3, 6), slice(2, 5), slice(2, 6))
    assert normalized_surface_dice(ROD, shifted, SPACING) == pytest.approx(1.0)
    # ... but not within a 0.5 mm tolerance.
    assert normalized_surface_dice(ROD, shifted, SPACING, tolerance_mm=0.5) < 1.0


def test_hd95_in_mm_on_anisotropic_spacing():
    shifted = _box(slice(2, 5), slice(2, 5), slice(3, 7))
    # 9 of 34 distances each way are 3 mm (> 5 %), the rest 0 or 1 mm: the 95th percentile is 3 mm.
    assert hausdorff95(ROD, shifted, SPACING) == pytest.approx(3.0)
    assert hausdorff95(ROD, shifted, (1.0, 1.0, 1.0)) == pytest.approx(1.0)
    a = _box(slice(2, 3), slice(2, 3), slice(2, 3))
    b = _box(slice(3, 4), slice(4, 5), slice(3, 4))
    # Single voxels offset by (1, 2, 1) voxels = (1, 2, 3) mm.
    assert hausdorff95(a, b, SPACING) == pytest.approx(math.sqrt(14), rel=1e-6)


def test_both_empty_is_a_perfect_score():
    empty = np.zeros(SHAPE, dtype=bool)
    assert dice(empty, empty) == 1.0
    assert normalized_surface_dice(empty, empty, SPACING) == 1.0
    assert hausdorff95(empty, empty, SPACING) == 0.0


@pytest.mark.parametrize("case", ["miss", "false_positive"])
def test_exactly_one_empty_is_the_worst_score(case):
    empty = np.zeros(SHAPE, dtype=bool)
    pred, ref = (empty, ROD) if case == "miss" else (ROD, empty)
    assert dice(pred, ref) == 0.0
    assert normalized_surface_dice(pred, ref, SPACING) == 0.0
    assert hausdorff95(pred, ref, SPACING) == pytest.approx(DIAGONAL)
    assert worst_case_distance(SHAPE, SPACING) == pytest.approx(DIAGONAL)


def test_identical_masks_and_tensor_input():
    as_tensor = torch.from_numpy(ROD.astype(np.uint8))
    assert dice(as_tensor, ROD) == 1.0
    assert normalized_surface_dice(as_tensor, ROD, SPACING) == 1.0
    assert hausdorff95(as_tensor, ROD, SPACING) == 0.0


def test_bad_inputs_are_refused():
    with pytest.raises(BundleInputError, match="not a binary mask"):
        dice(ROD.astype(np.uint8) * 3, ROD)
    with pytest.raises(BundleInputError, match="differs from reference shape"):
        dice(ROD[:, :, :5], ROD)
    with pytest.raises(ConfigurationError, match="spacing"):
        hausdorff95(ROD, ROD, (1.0, 1.0))
    with pytest.raises(ConfigurationError, match="spacing"):
        normalized_surface_dice(ROD, ROD, (1.0, 0.0, 3.0))


def test_evaluate_case_rows():
    empty = np.zeros(SHAPE, dtype=bool)
    shifted = _box(slice(2, 5), slice(2, 5), slice(3, 7))
    rows = evaluate_case(
        {"liver": shifted, "spleen": ROD, "unscored": ROD},
        {"liver": ROD, "spleen": empty, "aorta": ROD, "gallbladder": empty},
        SPACING,
        case_id="case_1",
        extra={"dataset": "demo", "region": "abdomen"},
    )
    assert [r["class"] for r in rows] == ["liver", "spleen", "aorta", "gallbladder"]
    assert list(rows[0]) == [*METRIC_COLUMNS, "dataset", "region"]
    liver, spleen, aorta, gallbladder = rows
    assert liver["dice"] == pytest.approx(0.75) and liver["hd95"] == pytest.approx(3.0)
    assert (liver["pred_voxels"], liver["ref_voxels"], liver["nsd_tolerance_mm"]) == (36, 36, 1.0)
    # Annotated as absent, predicted: false positive. Not predicted at all: a miss.
    assert (spleen["dice"], spleen["nsd"], spleen["hd95"]) == (0.0, 0.0, pytest.approx(DIAGONAL))
    assert (aorta["dice"], aorta["pred_voxels"], aorta["hd95"]) == (0.0, 0, pytest.approx(DIAGONAL))
    assert (gallbladder["dice"], gallbladder["nsd"], gallbladder["hd95"]) == (1.0, 1.0, 0.0)
    assert all(r["case"] == "case_1" and r["dataset"] == "demo" for r in rows)


def test_evaluate_case_refuses_clashing_columns_and_names_the_class():
    with pytest.raises(ConfigurationError, match="collide"):
        evaluate_case({}, {"liver": ROD}, SPACING, case_id="c", extra={"dice": 1})
    with pytest.raises(BundleInputError, match="case 'c'.*'liver'"):
        evaluate_case({"liver": ROD[:, :, :5]}, {"liver": ROD}, SPACING, case_id="c")
    with pytest.raises(BundleInputError, match="no reference masks"):
        evaluate_case({"liver": ROD}, {}, SPACING, case_id="c")


def test_iou_is_the_jaccard_index_of_each_mask():
    pred, ref = np.zeros((4, 4, 4), bool), np.zeros((4, 4, 4), bool)
    pred[0, 0, :4] = True
    ref[0, 0, 2:] = True
    ref[0, 1, :2] = True  # overlap 2 of a union of 6 voxels
    (row,) = evaluate_case({"x": pred}, {"x": ref}, (1.0, 1.0, 1.0), case_id="c")
    assert row["dice"] == pytest.approx(0.5) and row["iou"] == pytest.approx(2 / 6)


def test_surface_metrics_leave_the_logs_free_of_monais_internal_deprecation_warning():
    import warnings

    shifted = _box(slice(2, 5), slice(2, 5), slice(3, 7))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert normalized_surface_dice(ROD, shifted, SPACING) == pytest.approx(25 / 34, abs=1e-6)
        assert hausdorff95(ROD, shifted, SPACING) == pytest.approx(3.0)
