"""SAT network: shapes, query chunking, deep supervision, size checks, official key layout, positional encoding."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bundles.errors import ConfigurationError
from bundles.networks.sat.norm_act import instance_norm_leaky_relu
from bundles.networks.sat.positional_encoding import PositionalEncoding3D, sinusoidal_encoding_3d
from bundles.networks.sat.sat import SAT
from bundles.precision import autocast, channels_last, prepare_for_inference

TINY = dict(features=(8, 8, 16, 16, 32, 32), decoder_layers=2, projection_hidden=32, mask_embed_hidden=16,
            deep_supervision_hidden=(16, 16, 16))
ROI = (64, 64, 32)


@pytest.fixture(scope="module")
def tiny_net() -> SAT:
    torch.manual_seed(0)
    return SAT(ROI, deep_supervision=True, **TINY).eval()


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 1, *ROI, generator=g), torch.randn(2, 5, 768, generator=g)


def test_eval_output_shape_and_chunking(tiny_net, inputs):
    image, queries = inputs
    with torch.no_grad():
        whole = tiny_net(image, queries)
        tiny_net.max_queries = 2
        try:
            chunked = tiny_net(image, queries)
        finally:
            tiny_net.max_queries = 256
    assert whole.shape == (2, 5, *ROI) and whole.dtype == torch.float32
    assert whole.std() > 0
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)
    # a query's logits do not depend on the other queries
    with torch.no_grad():
        alone = tiny_net(image, queries[:, 3:4])
    torch.testing.assert_close(alone, whole[:, 3:4], rtol=0, atol=1e-5)


def test_logits_are_dot_products_with_decoder_features(tiny_net, inputs):
    image, queries = inputs
    with torch.no_grad():
        logits = tiny_net(image, queries)
        skips, features = tiny_net.backbone(image.expand(-1, 3, -1, -1, -1))
        memory = tiny_net._tokens(skips)
        pos = tiny_net.positional_encoding(skips[-1].shape[2:], memory.device)
        embedding = tiny_net.mask_embed_proj(tiny_net.transformer_decoder(queries, memory, pos))
        expected = torch.einsum("bcxyz,bqc->bqxyz", features[0], embedding)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert memory.shape == (2, 2 * 2 * 1, 768)


def test_deep_supervision_training_outputs(tiny_net, inputs):
    image, queries = inputs
    tiny_net.train()
    try:
        outputs = tiny_net(image, queries)
    finally:
        tiny_net.eval()
    assert [tuple(o.shape) for o in outputs] == [
        (2, 5, 64, 64, 32), (2, 5, 32, 32, 16), (2, 5, 16, 16, 8), (2, 5, 8, 8, 4)
    ]
    sum(o.mean() for o in outputs).backward()
    assert tiny_net.mid_mask_embed_proj[2][0].weight.grad is not None
    assert tiny_net.backbone.encoder.stages[0][0].convs[0].conv.weight.grad.abs().sum() > 0
    tiny_net.zero_grad(set_to_none=True)


def test_other_crop_sizes_and_bad_sizes(tiny_net):
    queries = torch.randn(1, 2, 768)
    with torch.no_grad():
        assert tiny_net(torch.randn(1, 1, 32, 64, 96), queries).shape == (1, 2, 32, 64, 96)
        with pytest.raises(ConfigurationError, match=r"\(64, 64, 40\)"):
            tiny_net(torch.randn(1, 1, 64, 64, 40), queries)
        with pytest.raises(ConfigurationError, match="queries"):
            tiny_net(torch.randn(1, 1, *ROI), torch.randn(1, 2, 512))
        with pytest.raises(ConfigurationError, match="B, 1, X, Y, Z"):
            tiny_net(torch.randn(1, 3, *ROI), queries)
    with pytest.raises(ConfigurationError, match=r"\(288, 288, 90\)"):
        SAT((288, 288, 90), **TINY)


def test_fast_path_close_to_float32(inputs):
    torch.manual_seed(0)
    net = SAT(ROI, **TINY).eval()
    image, queries = inputs
    with torch.no_grad():
        reference = net(image, queries)
    prepare_for_inference(net, torch.device("cpu"))
    with torch.inference_mode(), autocast(torch.device("cpu"), True):
        fast = net(channels_last(image), queries)
    assert fast.dtype == torch.bfloat16 and fast.shape == reference.shape
    assert (fast.float() - reference).abs().max() < 0.05 * reference.abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_instance_norm_in_place_matches_float64(dtype):
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(2, 6, 16, 8, 4, generator=g) * 3 + 50).to(memory_format=torch.channels_last_3d)
    w, b = torch.rand(6, generator=g) + 0.5, torch.randn(6, generator=g)
    expected = torch.nn.functional.leaky_relu(
        torch.nn.functional.instance_norm(x.to(dtype).double(), weight=w.double(), bias=b.double(), eps=1e-5), 0.01
    )
    with torch.no_grad():
        y = x.to(dtype)
        out = instance_norm_leaky_relu(y, w, b)
    assert out.data_ptr() == y.data_ptr() and out.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)


def _official_keys(repo_root, variant: str, deep_supervision: bool) -> dict[str, tuple[int, ...]]:
    data = json.loads((repo_root / "tests" / "data" / f"sat_{variant}_keys.json").read_text())
    keys = {k.removeprefix("module."): tuple(v) for k, v in data["keys_deep_supervision_true"].items()}
    keys = {k: v for k, v in keys.items() if ".all_modules." not in k}
    if not deep_supervision:
        keys = {k: v for k, v in keys.items() if not k.startswith("mid_mask_embed_proj.")}
    return keys


@pytest.mark.parametrize("variant", ["nano", "pro"])
@pytest.mark.parametrize("deep_supervision", [False, True])
def test_factories_match_official_keys(repo_root, variant, deep_supervision):
    with torch.device("meta"):
        net = getattr(SAT, variant)((288, 288, 96), deep_supervision=deep_supervision)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ours == _official_keys(repo_root, variant, deep_supervision)
    expected_params = {("nano", False): 109_194_624, ("nano", True): 110_277_568,
                       ("pro", False): 475_561_344, ("pro", True): 477_087_360}[(variant, deep_supervision)]
    assert sum(math.prod(s) for s in ours.values()) == expected_params


def test_positional_encoding_hand_computed_entries():
    pe = sinusoidal_encoding_3d((9, 9, 3), 768)
    assert pe.shape == (243, 768)
    row = lambda x, y, z: pe[(x * 9 + y) * 3 + z]  # noqa: E731 - tokens flattened in (x, y, z) order
    f1 = 1 / 10000 ** (2 / 256)  # second inverse frequency
    torch.testing.assert_close(row(0, 0, 0)[:4], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    torch.testing.assert_close(row(2, 0, 0)[:4], torch.tensor([math.sin(2), math.cos(2), math.sin(2 * f1), math.cos(2 * f1)]))
    torch.testing.assert_close(row(2, 0, 0)[256:258], torch.tensor([0.0, 1.0]))  # y = 0
    torch.testing.assert_close(row(0, 5, 0)[256:258], torch.tensor([math.sin(5), math.cos(5)]))
    torch.testing.assert_close(row(0, 0, 2)[512:514], torch.tensor([math.sin(2), math.cos(2)]))
    torch.testing.assert_close(row(4, 1, 1)[767], torch.tensor(math.cos(1 / 10000 ** (254 / 256))))
    cache = PositionalEncoding3D(768)
    assert cache((9, 9, 3), torch.device("cpu")) is cache((9, 9, 3), torch.device("cpu"))
