"""TorchScript export of the 2D SAM families by tracing: SAMed through MONAI's ``ckpt_export --use_trace``
(one input, so no overlay is needed) and SAM-UNet with ``torch.jit.trace`` on (image, boxes); the traced
models give the eager outputs on inputs they were not traced with (another batch size, other boxes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export
from monai.data import load_net_with_metadata

from tests.test_sam_unet_network import tiny_sam_unet

ROOT = Path(__file__).resolve().parents[1]
SAMED = [str(ROOT / "samed_lora" / "configs" / "inference.json"), str(ROOT / "tests" / "data" / "tiny_samed.json")]
#: tracing warns about every shape read as a Python int (the input size is fixed by design)
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")


def test_samed_ckpt_export_with_trace_matches_the_eager_network(tmp_path):
    parser = ConfigParser()
    parser.read_config(SAMED)
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def").eval()
    torch.save(net.state_dict(), tmp_path / "model.pt")
    ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(tmp_path / "model.pt"),
                meta_file=str(ROOT / "samed_lora" / "configs" / "metadata.json"), config_file=SAMED,
                use_trace=True, input_shape=[1, 3, 64, 64])
    traced, meta, _ = load_net_with_metadata(str(tmp_path / "model.ts"))
    assert meta["name"].startswith("SAMed")
    image = torch.rand(3, 3, 64, 64)  # traced with a batch of 1
    with torch.no_grad():
        torch.testing.assert_close(traced(image), net(image), rtol=1e-5, atol=1e-5)


def test_sam_unet_traced_with_boxes_matches_the_eager_network():
    net = tiny_sam_unet().eval()
    boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [10.0, 10.0, 50.0, 20.0]])
    with torch.no_grad():
        traced = torch.jit.trace(net, (torch.rand(2, 3, 64, 64), boxes), check_trace=False)
        image, other = torch.rand(2, 3, 64, 64), torch.tensor([[0.0, 0.0, 63.0, 63.0], [20.0, 25.0, 40.0, 60.0]])
        torch.testing.assert_close(traced(image, other), net(image, boxes=other), rtol=1e-5, atol=1e-5)
