"""MHSA2d against the explicit-loop reference and against timm's BottleneckAttn."""

from __future__ import annotations

import pytest
import torch
from reference import MODES, mhsa_loop

from botnet.layers import MHSA2d

SIZES = [(4, 4), (3, 5), (5, 3), (2, 1)]


def _reference(layer: MHSA2d, x: torch.Tensor) -> torch.Tensor:
    kwargs = {}
    if layer.pos_enc == "relative":
        kwargs["rel"] = layer.pos.tables(x.shape[2], x.shape[3])
    elif layer.pos_enc == "absolute":
        kwargs["absolute"] = layer.pos.tables(x.shape[2], x.shape[3])
    return mhsa_loop(x, layer.qkv.weight, layer.heads, content_content=layer.content_content, **kwargs)


def _layer(mode: str, dim: int = 8, heads: int = 2, ref_size=(4, 4)) -> MHSA2d:
    torch.manual_seed(0)
    layer = MHSA2d(dim, heads=heads, ref_size=ref_size, **MODES[mode]).double()
    # Larger weights than the official N(0, 0.01) so that the softmax is far from uniform.
    torch.nn.init.normal_(layer.qkv.weight, std=0.5)
    return layer


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", list(MODES))
def test_forward_matches_loop_reference(mode, size):
    layer = _layer(mode)
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _reference(layer, x))


@pytest.mark.parametrize("mode", list(MODES))
def test_gradients_match_loop_reference(mode):
    layer = _layer(mode)
    x = torch.randn(1, 8, 3, 4, dtype=torch.float64)
    upstream = torch.randn(1, 8, 3, 4, dtype=torch.float64)
    grads = []
    for fn in (layer, lambda t: _reference(layer, t)):
        layer.zero_grad()
        xi = x.clone().requires_grad_()
        (fn(xi) * upstream).sum().backward()
        grads.append([xi.grad] + [p.grad.clone() for p in layer.parameters()])
    assert len(grads[0]) == len(list(layer.parameters())) + 1
    for ours, ref in zip(*grads, strict=True):
        torch.testing.assert_close(ours, ref)


def test_fp32_within_1e5_of_float64_reference():
    layer = _layer("qk+qr_rel", dim=16, heads=4, ref_size=(5, 6))
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    expected = _reference(layer, x)
    out32 = layer.float()(x.float())
    torch.testing.assert_close(out32, expected.float(), rtol=1e-5, atol=1e-5)


def test_heads_are_contiguous_channel_groups():
    """Zeroing the q/k/v weights of head 1 must change only output channels of head 1 (d = 4)."""
    layer = _layer("qk+qr_rel", dim=8, heads=2)
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64)
    before = layer(x)
    with torch.no_grad():
        layer.qkv.weight[2 * 8 + 4 : 2 * 8 + 8] = 0  # v rows of head 1
    after = layer(x)
    torch.testing.assert_close(after[:, :4], before[:, :4])
    assert torch.all(after[:, 4:] == 0)


def test_position_logits_are_scaled_like_the_official_code():
    """With q k^T removed, doubling the tables must equal doubling the logits: softmax(2 * s * q r^T)."""
    layer = _layer("qr_rel", dim=8, heads=2)
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64)
    logits, _ = layer.attention_logits(x)
    q = layer.qkv(x)[:, :8].reshape(1, 2, 4, 9).transpose(-1, -2).reshape(1, 2, 3, 3, 4)
    unscaled = layer.pos(q)
    torch.testing.assert_close(logits, unscaled * 4**-0.5)


@pytest.mark.parametrize("size", [(6, 6), (5, 7), (7, 4)])
def test_equals_timm_bottleneck_attn_with_scaled_position_logits(size):
    timm_attn = pytest.importorskip("timm.layers.bottleneck_attn")
    dim = 32
    theirs = timm_attn.BottleneckAttn(dim, feat_size=size, num_heads=4, scale_pos_embed=True).eval()
    ours = MHSA2d(dim, heads=4, ref_size=size).eval()
    with torch.no_grad():
        ours.qkv.weight.copy_(theirs.qkv.weight)
        ours.pos.rel_h.copy_(theirs.pos_embed.height_rel)
        ours.pos.rel_w.copy_(theirs.pos_embed.width_rel)
    x = torch.randn(2, dim, *size)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    # The state dicts line up name by name up to the position module's prefix.
    assert ours.qkv.weight.shape == theirs.qkv.weight.shape


def test_any_input_size_with_one_layer():
    layer = MHSA2d(16, heads=4, ref_size=(4, 4))
    for size in [(4, 4), (1, 1), (2, 9), (9, 2), (7, 7)]:
        out = layer(torch.randn(1, 16, *size))
        assert out.shape == (1, 16, *size)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dim=10, heads=4), "heads must divide dim"),
        (dict(dim=8, heads=2, pos_enc="rotary"), "pos_enc must be one of"),
        (dict(dim=8, heads=2, pos_enc="none", content_content=False), "at least one logit term"),
        (dict(dim=8, heads=2, pos_extend="wrap"), "extend must be one of"),
        (dict(dim=0, heads=1), "positive integers"),
    ],
)
def test_bad_construction_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MHSA2d(**kwargs)


@pytest.mark.parametrize("shape", [(1, 6, 4, 4), (8, 4, 4), (1, 8, 4, 4, 1)])
def test_bad_input_shapes_name_the_expected_shape(shape):
    with pytest.raises(ValueError, match=r"expects a \(B, 8, H, W\) tensor"):
        MHSA2d(8, heads=2)(torch.randn(*shape))
