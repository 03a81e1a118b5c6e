"""SAM-UNet network: shapes with boxes and with points, the SAM encoder really frozen, the staged encoder equal
to SAM's own encoder when the adapters add nothing, prompt errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bundles.errors import ConfigurationError
from bundles.networks.sam_unet import SAMUNet

#: A tiny SAM-UNet: 64 x 64 input, 4 x 4 tokens, 4 blocks (each global block ends a stage), ResNet-18 branch.
TINY = dict(img_size=64, cnn="resnet18", patch_size=16, embed_dim=32, depth=4, num_heads=2, global_attn_indexes=(0, 1, 2, 3),
            window_size=2, prompt_dim=32, decoder_depth=2, decoder_heads=2, decoder_mlp_dim=64)


def tiny_sam_unet(seed: int = 0) -> SAMUNet:
    torch.manual_seed(seed)
    return SAMUNet(**TINY)


def test_forward_shapes_with_boxes_points_and_both():
    net = tiny_sam_unet().eval()
    image = torch.rand(2, 3, 64, 64)
    boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [10.0, 10.0, 50.0, 20.0]])
    points = torch.tensor([[[12.0, 20.0], [40.0, 40.0]], [[30.0, 15.0], [5.0, 5.0]]])
    labels = torch.tensor([[1, 0], [1, 1]])
    with torch.no_grad():
        by_box = net(image, boxes=boxes)
        by_points = net(image, points=points, point_labels=labels)
        both = net(image, boxes=boxes, points=points, point_labels=labels)
    assert by_box.shape == by_points.shape == both.shape == (2, 1, 64, 64)
    assert not torch.allclose(by_box, by_points) and not torch.allclose(by_box, both)
    with torch.no_grad():  # another box changes the mask: the prompt reaches the decoder
        assert not torch.allclose(net(image, boxes=boxes.flip(0)), by_box)


def test_sam_encoder_is_frozen_and_unchanged_by_a_training_step():
    net = tiny_sam_unet()
    frozen = {k: v.clone() for k, v in net.image_encoder.state_dict().items()}
    assert not any(p.requires_grad for p in net.image_encoder.parameters())
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    loss = net(torch.rand(2, 3, 64, 64), boxes=torch.tensor([[4.0, 6.0, 30.0, 40.0]] * 2)).sigmoid().mean()
    loss.backward()
    assert all(p.grad is None for p in net.image_encoder.parameters())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    optimizer.step()
    assert all(torch.equal(frozen[k], v) for k, v in net.image_encoder.state_dict().items())
    changed = [k for k, v in net.state_dict().items() if not torch.equal(before[k], v)]
    assert any(k.startswith("resnet.") for k in changed) and any(k.startswith("adapters_in.") for k in changed)
    assert any(k.startswith("mask_decoder.med_token") for k in changed)


def test_staged_encoder_is_sams_encoder_when_the_adapters_add_nothing():
    net = tiny_sam_unet().eval()
    for adapter in net.adapters_in:
        last = adapter.reshaper[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        embedding, multi_scale = net.encode(image)
        assert torch.allclose(embedding, net.image_encoder(image), atol=1e-6)
    assert multi_scale.shape == (1, 4, 16, 16)


def test_missing_or_malformed_prompts_and_wrong_images_are_clear():
    net = tiny_sam_unet()
    image = torch.rand(1, 3, 64, 64)
    with pytest.raises(ConfigurationError, match="needs a prompt for every mask"):
        net(image)
    with pytest.raises(ConfigurationError, match=r"point_labels must be \(B, N\)"):
        net(image, points=torch.zeros(1, 2, 2))
    with pytest.raises(ConfigurationError, match=r"SAM-UNet takes images \(B, 3, 64, 64\); got \(1, 1, 64, 64\)"):
        net(torch.rand(1, 1, 64, 64), boxes=torch.zeros(1, 4))


def test_res34_builds_with_the_papers_sizes_on_meta():
    with torch.device("meta"):
        net = SAMUNet.res34()
        out = net(torch.empty(1, 3, 256, 256), boxes=torch.empty(1, 4))
    assert tuple(out.shape) == (1, 1, 256, 256)
    assert net.resnet.channels == (64, 128, 256, 512)
    assert len(net.adapters_in[0].reshaper) == 7  # f1: 64 px -> two stride-2 convs (+ norm, GELU) -> 1x1 conv
