"""SAM-Med3D network: shapes, the official key layout, the quirks its weights depend on, and the shared SAM
base's pieces checked against explicit loop definitions (tiny configurations, real code paths)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bundles.errors import ConfigurationError
from bundles.networks.sam import windows
from bundles.networks.sam.rel_pos import add_decomposed, lookup
from bundles.networks.sam_med3d import SAMMed3D
from bundles.networks.sam_med3d.rel_pos_3d import add_sam_med3d_rel_pos

#: img 32, patch 8 -> a 4³ token grid; window 3 -> padded to 6³, 8 windows; 16³ low-res logits.
TINY = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4, global_attn_indexes=(1,), window_size=3,
            prompt_dim=48, decoder_depth=2, decoder_heads=4, decoder_mlp_dim=64)
KEYS = Path(__file__).parent / "data" / "sam_med3d_keys.json"


def _tiny(seed: int = 0) -> SAMMed3D:
    torch.manual_seed(seed)
    net = SAMMed3D.vit_b_ori(**TINY).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "rel_pos" in name or "pos_embed" in name:
                p.normal_(0, 0.2)  # zero-initialised officially; random here so their indexing matters
    return net


def test_vit_b_ori_has_the_official_keys_shapes_and_parameter_count():
    with torch.device("meta"):
        net = SAMMed3D.vit_b_ori()
    official = json.loads(KEYS.read_text())
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == {k: list(v) for k, v in official["state_dict"].items()}
    assert sum(p.numel() for p in net.parameters()) == official["_meta"]["num_parameters_total"] == 100_509_232


def test_forward_shapes_and_encode_then_decode_equals_forward():
    net = _tiny()
    image = torch.randn(2, 1, 32, 32, 32)
    points = torch.tensor([[[3.0, 20.0, 31.0]], [[16.0, 0.0, 7.0]]])
    labels = torch.tensor([[1], [0]])
    with torch.no_grad():
        embedding = net.encode(image)
        assert embedding.shape == (2, 48, 4, 4, 4)
        low = net(image, points, labels)
        assert low.shape == (2, 1, 16, 16, 16)
        assert torch.equal(low, net.decode(embedding, points, labels, torch.zeros(2, 1, 16, 16, 16)))
        refined = net.decode(embedding, points, labels, low)
        assert not torch.allclose(refined, low)  # the previous logits are an input
        no_click = net.decode(embedding, points[:, :0], labels[:, :0], low)
        assert no_click.shape == (2, 1, 16, 16, 16) and not torch.allclose(no_click, refined)


def test_unknown_variant_and_bad_size_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="unknown SAM-Med3D variant 'vit_h'"):
        SAMMed3D.build("vit_h")
    with pytest.raises(ConfigurationError, match="multiple of 4 x patch_size"):
        SAMMed3D.vit_b_ori(**{**TINY, "img_size": 40})


def test_windows_zero_pad_partition_and_unpartition_round_trip():
    x = torch.randn(2, 4, 4, 4, 5)
    parts, padded = windows.partition(x, 3)
    assert padded == (6, 6, 6) and parts.shape == (2 * 8, 3, 3, 3, 5)
    # window 0 of image 0 holds x[0, :3, :3, :3]; the last window of image 1 holds x[1, 3, 3, 3] then zeros
    assert torch.equal(parts[0], x[0, :3, :3, :3])
    assert torch.equal(parts[15, 0, 0, 0], x[1, 3, 3, 3]) and not parts[15, 1:].any()
    assert torch.equal(windows.unpartition(parts, 3, padded, (4, 4, 4)), x)


def test_the_sam_med3d_rel_pos_bias_is_the_official_broadcasting_not_the_2d_one():
    torch.manual_seed(1)
    s, c = 3, 4
    q = torch.randn(2, s**3, c)
    tables = [torch.randn(2 * s - 1, c) for _ in range(3)]
    rel = [lookup(t, s) for t in tables]
    attn = torch.zeros(2, s**3, s**3)
    got = add_sam_med3d_rel_pos(attn, q, rel, (s, s, s)).view(2, s, s, s, s, s, s)
    generic = add_decomposed(attn, q, rel, (s, s, s)).view(2, s, s, s, s, s, s)
    qg = q.view(2, s, s, s, c)

    def bias(axis: int, qpos: int, kpos: int, b: int, i: int, j: int, l: int) -> torch.Tensor:
        return qg[b, i, j, l] @ tables[axis][qpos - kpos + s - 1]

    for b, i, j, l, m, n, o in [(0, 0, 1, 2, 2, 0, 1), (1, 2, 2, 0, 1, 1, 0), (0, 1, 0, 1, 0, 2, 2)]:
        # official: rel_d[b, i, j, l, o] + rel_h[b, i, j, m, o] + rel_w[b, i, j, n, o]
        official = bias(0, i, o, b, i, j, l) + bias(1, j, o, b, i, j, m) + bias(2, n, o, b, i, j, n)
        decomposed = bias(0, i, m, b, i, j, l) + bias(1, j, n, b, i, j, l) + bias(2, l, o, b, i, j, l)
        assert torch.allclose(got[b, i, j, l, m, n, o], official, atol=1e-5)
        assert torch.allclose(generic[b, i, j, l, m, n, o], decomposed, atol=1e-5)
    assert not torch.allclose(got, generic)


def test_dense_positional_grid_swaps_the_first_two_axes_relative_to_points():
    net = _tiny()
    pe = net.prompt_encoder
    dense = pe.dense_pe()[0]  # (48, 4, 4, 4)
    i, j, k = 0, 3, 1
    centre = torch.tensor([[[8 * i + 3.5, 8 * j + 3.5, 8 * k + 3.5]]])  # +0.5 inside -> cell centre
    point = pe.pe_layer.encode((centre + 0.5) / 32)[0, 0]
    assert torch.allclose(point, dense[:, j, i, k], atol=1e-5)
    assert (point - dense[:, i, j, k]).abs().max() > 0.1


def test_padding_point_is_appended_and_not_a_point():
    net = _tiny()
    emb = net.prompt_encoder.embed_points(torch.tensor([[[1.0, 2.0, 3.0]]]), torch.tensor([[1]]))
    assert emb.shape == (1, 2, 48)
    assert torch.equal(emb[0, 1], net.prompt_encoder.not_a_point_embed.weight[0])
