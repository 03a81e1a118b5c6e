"""SAT's training crops refuse training cases they cannot use, naming the file, before any training."""

from __future__ import annotations

import pytest

from bundles.errors import BundleInputError
from bundles.io.cases import parse_cases
from bundles.sat.crops import prepare_case
from bundles.sat.preprocessing import SATPreprocessing


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"modality": "ct"}, "needs 'mask'"),
        ({"mask": "label.nii.gz", "legend": {"1": "liver"}}, "needs 'modality'"),
    ],
)
def test_a_training_case_without_mask_or_modality_is_refused(tmp_path, fields, match):
    (case,) = parse_cases({"image": str(tmp_path / "image.nii.gz"), **fields})
    with pytest.raises(BundleInputError, match=match) as info:
        prepare_case(case, SATPreprocessing())
    assert "image.nii.gz" in str(info.value)
