"""Bottleneck, BoT block, squeeze-excitation and non-local blocks."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from botnet.layers import BoTBlock, Bottleneck, MHSA2d, NonLocal2d, SqueezeExcite

ATTN = partial(MHSA2d, heads=4, ref_size=(8, 8))


@pytest.mark.parametrize("size", [(8, 8), (7, 7), (15, 15), (9, 6), (1, 3)])
def test_stride2_bot_block_works_on_odd_sizes(size):
    """The pooled path and the strided shortcut agree: ceil(H/2) x ceil(W/2) (peers crash at 15x15)."""
    block = BoTBlock(64, 16, attn_layer=ATTN, stride=2)
    out = block(torch.randn(2, 64, *size))
    assert out.shape == (2, 64, math.ceil(size[0] / 2), math.ceil(size[1] / 2))
    assert torch.isfinite(out).all()


def test_stride2_pool_averages_the_pixels_each_window_covers():
    block = BoTBlock(16, 8, attn_layer=ATTN, stride=2)
    y = torch.randn(1, 8, 5, 3, dtype=torch.float64)
    pooled = block.pool(y)
    assert pooled.shape == (1, 8, 3, 2)
    for i in range(3):
        for j in range(2):
            window = y[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]  # slicing clips at the edge
            torch.testing.assert_close(pooled[:, :, i, j], window.mean(dim=(2, 3)))


@pytest.mark.parametrize("size", [(1, 1), (1, 4), (5, 3), (6, 8), (9, 9)])
def test_stride2_pool_equals_torch_ceil_mode_pool(size):
    y = torch.randn(2, 4, *size, dtype=torch.float64, requires_grad=True)
    ours = BoTBlock(16, 4, attn_layer=ATTN, stride=2).pool(y)
    ref = F.avg_pool2d(y, 2, 2, ceil_mode=True)
    torch.testing.assert_close(ours, ref)
    g = torch.randn_like(ref)
    torch.testing.assert_close(*(torch.autograd.grad(out, y, g)[0] for out in (ours, ref)))


def test_bot_block_at_init_is_act_of_shortcut():
    """Last BN gamma starts at zero, so the block starts as ReLU(shortcut) with the official ReLU'd projection."""
    torch.manual_seed(0)
    block = BoTBlock(32, 16, attn_layer=ATTN, stride=2)
    block.zero_init_last()
    x = torch.randn(2, 32, 6, 6)
    sc = block.downsample
    assert isinstance(sc[2], nn.ReLU)
    expected = F.relu(F.relu(sc[1](sc[0](x))))
    torch.testing.assert_close(block(x), expected)


def test_bot_block_identity_shortcut_when_shapes_match():
    block = BoTBlock(64, 16, attn_layer=ATTN, stride=1)
    assert block.downsample is None
    block.zero_init_last()
    x = torch.randn(2, 64, 5, 7)
    torch.testing.assert_close(block(x), F.relu(x))


def test_bot_block_uses_attention_not_a_3x3_conv():
    block = BoTBlock(64, 16, attn_layer=ATTN)
    assert isinstance(block.attn, MHSA2d) and not hasattr(block, "conv2")
    # Global receptive field: a change at one corner reaches the opposite corner within one block.
    nn.init.ones_(block.bn3.weight)
    x = torch.randn(1, 64, 6, 6)
    x2 = x.clone()
    x2[:, :, 0, 0] += 5.0
    assert not torch.allclose(block(x)[:, :, 5, 5], block(x2)[:, :, 5, 5])


def test_bottleneck_follows_resnet_v1_5():
    block = Bottleneck(64, 32, stride=2)
    assert block.conv2.stride == (2, 2) and block.conv1.stride == (1, 1)  # v1.5: stride on the 3x3
    assert all(m.bias is None for m in (block.conv1, block.conv2, block.conv3))
    assert block(torch.randn(1, 64, 9, 9)).shape == (1, 128, 5, 5)


@pytest.mark.parametrize("stride", [0, 3])
def test_blocks_reject_unsupported_strides(stride):
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        Bottleneck(8, 4, stride=stride)
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        BoTBlock(8, 4, attn_layer=ATTN, stride=stride)


def test_squeeze_excite_matches_formula():
    se = SqueezeExcite(16, 4, nn.SiLU).double()
    x = torch.randn(2, 16, 3, 5, dtype=torch.float64)
    s = x.mean(dim=(2, 3))  # (B, C)
    s = F.linear(s, se.fc1.weight[:, :, 0, 0], se.fc1.bias)
    s = F.linear(F.silu(s), se.fc2.weight[:, :, 0, 0], se.fc2.bias)
    torch.testing.assert_close(se(x), x * torch.sigmoid(s)[:, :, None, None])


def test_non_local_matches_formula_and_starts_as_identity():
    nl = NonLocal2d(8).double()
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(nl(x), x)  # BN gamma 0
    nn.init.normal_(nl.bn.weight)
    nl.eval()

    def proj(conv, t):  # 1x1 conv as a matmul over positions: (B, Ci, N)
        return torch.einsum("oc,bcn->bon", conv.weight[:, :, 0, 0], t.flatten(2)) + conv.bias[None, :, None]

    theta, phi, g = proj(nl.theta, x), proj(nl.phi, x), proj(nl.g, x)
    attn = torch.softmax(torch.einsum("bcn,bcm->bnm", theta, phi), dim=-1)
    y = torch.einsum("bnm,bcm->bcn", attn, g).reshape(2, 4, 3, 4)
    expected = x + nl.bn(nl.out(y))
    torch.testing.assert_close(nl(x), expected)
