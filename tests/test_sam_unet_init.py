"""Starting SAM-UNet from SAM: the resized SAM parts and a torchvision ResNet file land in the right keys,
SAM's multimask heads are dropped with a reason, the result loads strictly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.models import resnet18

from bundles.networks.sam import variants
from bundles.sam_unet.convert import init_from_sam
from tests.test_sam_unet_network import TINY, tiny_sam_unet
from tests.test_samed_network import official_sam

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = {k: v for k, v in TINY.items()}


def test_sam_parts_and_resnet_weights_are_placed_and_load_strictly(tmp_path, monkeypatch):
    monkeypatch.setitem(variants.SAM_ENCODERS, "vit_t4", dict(embed_dim=32, depth=4, num_heads=2, global_attn_indexes=(0, 1, 2, 3)))
    sam = official_sam(128, global_attn_indexes=(0, 1, 2, 3))
    torch.save(sam.state_dict(), tmp_path / "sam.pth")
    torch.manual_seed(3)
    resnet = resnet18(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    conversion = init_from_sam(tmp_path / "sam.pth", "res34", tmp_path / "resnet18.pth", **OVERRIDES)
    net = tiny_sam_unet()
    net.load_state_dict(conversion.state, strict=True)
    expected_pos = F.interpolate(sam.image_encoder.pos_embed.permute(0, 3, 1, 2), size=(4, 4), mode="bilinear", align_corners=False)
    assert torch.allclose(net.image_encoder.pos_embed, expected_pos.permute(0, 2, 3, 1))
    assert torch.equal(net.mask_decoder.transformer.layers[1].mlp.lin1.weight, sam.mask_decoder.transformer.layers[1].mlp.lin1.weight)
    assert torch.equal(net.resnet.stage3[0].conv1.weight, resnet.layer3[0].conv1.weight)
    assert torch.equal(net.resnet.stage0[1].running_mean, resnet.bn1.running_mean)
    assert conversion.dropped["SAM mask_decoder.iou_token.weight"].startswith("no place in SAM-UNet")
    assert conversion.dropped["ResNet fc.weight"].startswith("the classification head")


def test_tool_refuses_a_file_that_is_not_sam_in_one_line(tmp_path):
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "not_sam.pth")
    done = subprocess.run([sys.executable, "-m", "bundles.sam_unet.convert", "--sam_checkpoint", str(tmp_path / "not_sam.pth"),
                           "--output", str(tmp_path / "out.pt")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr and "not a 2D SAM checkpoint" in done.stderr
    assert not (tmp_path / "out.pt").exists()
