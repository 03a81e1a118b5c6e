"""Every bundle's metadata passes MONAI's schema check against the shipped schema, and its network_def
passes MONAI's input/output check with the text-query input declared in the metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import verify_metadata, verify_net_in_out

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "bundles" / "data" / "meta_schema_20240725.json"
BUNDLES = ["sat_nano", "sat_pro"]


@pytest.mark.parametrize("bundle", BUNDLES)
def test_verify_metadata_offline(bundle):
    verify_metadata(meta_file=str(ROOT / bundle / "configs" / "metadata.json"), filepath=str(SCHEMA))


@pytest.mark.parametrize("bundle", BUNDLES)
def test_verify_net_in_out_with_query_input(bundle):
    configs = ROOT / bundle / "configs"
    queries = torch.rand(1, 1, 768)  # metadata: inputs.queries (B, Q, 768); outputs.pred has one channel per query
    verify_net_in_out(
        net_id="network_def", meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.json"),
        device="cpu", n=2, extra_forward_args={"queries": queries}, roi_size=[64, 64, 64],
    )
