"""MONAI's ``verify_net_in_out`` on each bundle's ``network_def``, as the bundle READMEs run it.

SAT's forward takes ``(image, queries)``. ``verify_net_in_out`` builds only the image from
``network_data_format.inputs.image``; the text queries must come through ``extra_forward_args``, which
MONAI passes to ``forward`` as they are. A tensor cannot be written on the command line (python-fire
parses arguments as Python literals), so the check runs through the Python API. The metadata declares
``outputs.pred.num_channels = 1`` (one channel per query), so exactly one query is passed. The tiny
overlay (tests/data/tiny_sat.json) keeps the network small; the check does not load weights.
SAM-Med3D's check (the full-size network, clicks as ``extra_forward_args``) is the documented command of
``sam_med3d/docs/README.md``, run by ``test_documented_commands.py``. SAMed's full-size ``network_def`` takes
the image alone and runs here as it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import verify_net_in_out

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests" / "data" / "tiny_sat.json")
BUNDLES = ["sat_nano", "sat_pro"]


def _configs(bundle: str) -> list[str]:
    configs = ROOT / bundle / "configs"
    return [str(configs / "inference.json"), TINY]


def _verify(bundle: str, **kwargs) -> None:
    verify_net_in_out(net_id="network_def", meta_file=str(ROOT / bundle / "configs" / "metadata.json"),
                      config_file=_configs(bundle), device="cpu", **kwargs)


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("n", [1, 2])
def test_verify_net_in_out_with_one_query(bundle, n):
    """spatial_shape "32*n": n=1 is a 32^3 crop (a 1^3 token grid), n=2 a 64^3 crop."""
    _verify(bundle, n=n, extra_forward_args={"queries": torch.rand(1, 1, 768)})


@pytest.mark.parametrize("bundle", BUNDLES)
def test_verify_net_in_out_without_queries_fails(bundle):
    """What the plain command line (no tensor for ``queries``) gets."""
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'queries'"):
        _verify(bundle, n=2)


def test_verify_net_in_out_counts_one_channel_per_query():
    """Two queries give two output channels, against the one channel the metadata declares."""
    with pytest.raises(ValueError, match="output channel number `2` doesn't match: `1`"):
        _verify("sat_nano", n=2, extra_forward_args={"queries": torch.rand(1, 2, 768)})



def test_samed_full_size_network_def_passes_verify_net_in_out():
    """SAMed's contract: ``network_def`` is ViT-B at 512 with 8 classes; (1, 3, 512, 512) -> (1, 9, 512, 512)."""
    verify_net_in_out(net_id="network_def", meta_file=str(ROOT / "samed_lora" / "configs" / "metadata.json"),
                      config_file=str(ROOT / "samed_lora" / "configs" / "inference.json"), device="cpu")


def test_sam_unet_full_size_network_def_passes_verify_net_in_out_with_a_box():
    """SAM-UNet's contract: (1, 3, 256, 256) and a box -> (1, 1, 256, 256) logits; the box comes through
    ``extra_forward_args`` (a tensor cannot be written on the command line)."""
    verify_net_in_out(net_id="network_def", meta_file=str(ROOT / "sam_unet" / "configs" / "metadata.json"),
                      config_file=str(ROOT / "sam_unet" / "configs" / "inference.json"), device="cpu",
                      extra_forward_args={"boxes": torch.tensor([[40.0, 50.0, 180.0, 200.0]])})
