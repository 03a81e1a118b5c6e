"""SAMed network: the official segment-anything modules with SAMed's prompt-free forward give our outputs;
LoRA with zero B leaves SAM unchanged; the 1024 -> input-size resize of pos_embed and rel-pos tables."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from segment_anything.modeling.image_encoder import get_rel_pos

from bundles.errors import ConfigurationError
from bundles.networks.sam import variants
from bundles.networks.sam.checkpoint import fit_to_input, rename_qkv
from bundles.networks.samed import SAMed
from bundles.networks.samed import samed as samed_module

#: A tiny SAM "variant" for tests: the official checkpoint side is 128 (8 x 8 tokens), SAMed runs at 64.
TINY_ENCODER = dict(embed_dim=32, depth=4, num_heads=2, global_attn_indexes=(1, 3))
TINY_SHARED = dict(patch_size=16, window_size=2, prompt_dim=32, decoder_depth=2, decoder_heads=2, decoder_mlp_dim=64)
TINY_SAMED = dict(img_size=64, num_classes=3, rank=2)
OFFICIAL_SIDE = 128


@pytest.fixture
def vit_t(monkeypatch):
    """Register the tiny variant ``vit_t`` in the SAM and SAMed registries for one test."""
    monkeypatch.setitem(variants.SAM_ENCODERS, "vit_t", TINY_ENCODER)
    monkeypatch.setitem(samed_module.VARIANTS, "vit_t", {**TINY_SHARED, **TINY_ENCODER, **TINY_SAMED})
    return "vit_t"


def official_sam(side: int = OFFICIAL_SIDE, num_multimask_outputs: int = 3, seed: int = 0, global_attn_indexes: tuple[int, ...] = (1, 3)) -> Sam:
    """segment-anything's own modules at tiny sizes, random weights (SAM's builder layout at ``side``)."""
    torch.manual_seed(seed)
    grid = side // TINY_SHARED["patch_size"]
    encoder = ImageEncoderViT(
        img_size=side, patch_size=16, embed_dim=32, depth=4, num_heads=2, out_chans=32, qkv_bias=True,
        norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True, global_attn_indexes=global_attn_indexes, window_size=2,
    )
    prompt = PromptEncoder(embed_dim=32, image_embedding_size=(grid, grid), input_image_size=(side, side), mask_in_chans=16)
    decoder = MaskDecoder(
        num_multimask_outputs=num_multimask_outputs, transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=2),
        transformer_dim=32, iou_head_depth=3, iou_head_hidden_dim=256,
    )
    sam = Sam(encoder, prompt, decoder).eval()
    with torch.no_grad():
        for p in sam.parameters():
            p.normal_(0, 0.2)
    return sam


def official_samed_forward(sam: Sam, image: torch.Tensor) -> torch.Tensor:
    """SAMed's prompt-free path (its ``Sam.forward_train``) on the official modules: all mask tokens, bilinear x4."""
    embedding = sam.image_encoder(image)
    sparse, dense = sam.prompt_encoder(points=None, boxes=None, masks=None)
    low, _ = sam.mask_decoder.predict_masks(embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense)
    return F.interpolate(low, (image.shape[-2], image.shape[-1]), mode="bilinear", align_corners=False)


def tiny_samed(**overrides) -> SAMed:
    return SAMed(**{**TINY_SHARED, **TINY_ENCODER, **TINY_SAMED, **overrides}).eval()


def random_lora_(net: SAMed, seed: int = 1) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.lora_parameters():
            p.normal_(0, 0.3)


def merge_lora_into_official(sam: Sam, net: SAMed) -> None:
    """W_q += B_q A_q, W_v += B_v A_v in the official encoder: what the LoRA computes, written as one linear."""
    dim = TINY_ENCODER["embed_dim"]
    with torch.no_grad():
        for official, ours in zip(sam.image_encoder.blocks, net.image_encoder.blocks):
            lora = ours.attn.qkv
            official.attn.qkv.weight[:dim] += lora.linear_b_q.weight @ lora.linear_a_q.weight
            official.attn.qkv.weight[-dim:] += lora.linear_b_v.weight @ lora.linear_a_v.weight


def test_forward_matches_official_modules_with_resized_checkpoint_and_lora(vit_t):
    sam_1024 = official_sam(OFFICIAL_SIDE)
    net = tiny_samed()
    state = rename_qkv(fit_to_input(sam_1024.state_dict(), vit_t, TINY_SAMED["img_size"]))
    random_lora_(net)
    lora = {k: v for k, v in net.state_dict().items() if "linear_" in k}
    heads = official_sam(TINY_SAMED["img_size"], num_multimask_outputs=TINY_SAMED["num_classes"], seed=5).state_dict()
    state.update({k: v for k, v in heads.items() if k.startswith(("prompt_encoder.", "mask_decoder."))})
    net.load_state_dict({**state, **lora}, strict=True)

    # reference: the official encoder built at 64, pos_embed resized by interpolation and the global
    # tables by the official runtime interpolation (get_rel_pos), LoRA merged into qkv
    reference = official_sam(TINY_SAMED["img_size"], num_multimask_outputs=TINY_SAMED["num_classes"])
    ref_state = dict(sam_1024.state_dict())
    ref_state["image_encoder.pos_embed"] = F.interpolate(
        ref_state["image_encoder.pos_embed"].permute(0, 3, 1, 2), size=(4, 4), mode="bilinear", align_corners=False
    ).permute(0, 2, 3, 1)
    for block in TINY_ENCODER["global_attn_indexes"]:
        for axis in "hw":
            key = f"image_encoder.blocks.{block}.attn.rel_pos_{axis}"
            table = get_rel_pos(4, 4, ref_state[key])  # (4, 4, c): [i, j] = resized[i - j + 3]
            ref_state[key] = torch.cat([table[0].flip(0), table[3, :3].flip(0)], dim=0)
            assert torch.allclose(ref_state[key], state[key], atol=1e-6)
    ref_state.update({k: v for k, v in heads.items() if k.startswith(("prompt_encoder.", "mask_decoder."))})
    reference.load_state_dict(ref_state, strict=True)
    merge_lora_into_official(reference, net)

    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = official_samed_forward(reference, image)
        out = net(image)
        low = net.low_res_logits(image)
    assert out.shape == (2, 4, 64, 64) and low.shape == (2, 4, 16, 16)
    assert (out - expected).abs().max() < 1e-4
    assert expected.abs().max() > 0.05  # a real signal, not zeros on both sides


def test_zero_b_lora_leaves_sam_unchanged_and_nonzero_b_changes_it():
    net = tiny_samed()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for p in net.lora_parameters()[0::2]:  # A factors random, B factors still zero
            p.normal_(0, 1.0)
        plain = net.image_encoder(image)
        sam = official_sam(64)
        ours = {k: v for k, v in net.state_dict().items() if k.startswith("image_encoder.") and "linear_" not in k}
        sam.image_encoder.load_state_dict({k[len("image_encoder.") :].replace("qkv.qkv.", "qkv."): v for k, v in ours.items()})
        assert (plain - sam.image_encoder(image)).abs().max() < 1e-5  # float rounding only (fused attention)
        net.lora_parameters()[1].normal_(0, 1.0)
        assert (net.image_encoder(image) - plain).abs().max() > 1e-3


def test_only_lora_prompt_encoder_and_decoder_train():
    net = tiny_samed()
    trainable = {k for k, p in net.named_parameters() if p.requires_grad}
    assert all(k.startswith(("prompt_encoder.", "mask_decoder.")) or ".linear_" in k for k in trainable)
    assert sum(".linear_" in k for k in trainable) == 4 * TINY_ENCODER["depth"]
    assert not any(k.startswith("image_encoder.") and ".linear_" not in k for k in trainable)


def test_resize_shapes_match_samed_reference_for_vit_b():
    """The reference's ViT-B shapes: pos_embed 64 -> 32, global tables 127 -> 63, windowed tables kept."""
    state = {"image_encoder.pos_embed": torch.randn(1, 64, 64, 8)}
    for block in range(12):
        side = 127 if block in (2, 5, 8, 11) else 27
        state[f"image_encoder.blocks.{block}.attn.rel_pos_h"] = torch.randn(side, 4)
    out = fit_to_input(state, "vit_b", 512)
    assert out["image_encoder.pos_embed"].shape == (1, 32, 32, 8)
    assert out["image_encoder.blocks.2.attn.rel_pos_h"].shape == (63, 4)
    assert out["image_encoder.blocks.11.attn.rel_pos_h"].shape == (63, 4)
    assert torch.equal(out["image_encoder.blocks.0.attn.rel_pos_h"], state["image_encoder.blocks.0.attn.rel_pos_h"])
    same = fit_to_input(out, "vit_b", 512)
    assert all(torch.equal(same[k], out[k]) for k in out)


def test_vit_b_builds_the_contract_shapes_on_meta():
    with torch.device("meta"):
        net = SAMed.vit_b()
        out = net(torch.empty(2, 3, 512, 512))
    assert tuple(out.shape) == (2, 9, 512, 512)
    lora = sum(p.numel() for p in net.lora_parameters())
    assert lora == 147_456  # SAMed reference: 12 blocks x 2 x (4 x 768 + 768 x 4)


def test_wrong_input_shape_and_unknown_variant_are_clear():
    net = tiny_samed()
    with pytest.raises(ConfigurationError, match=r"SAMed takes images \(B, 3, 64, 64\); got \(1, 1, 64, 64\)"):
        net(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ConfigurationError, match="unknown SAMed variant 'vit_x'"):
        SAMed.build("vit_x")
