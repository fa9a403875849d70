"""relative_logits / absolute_logits and the table resize policies against explicit references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import absolute_logits_loop, relative_logits_loop

from botnet.layers import (
    AbsolutePosition2d,
    RelativePosition2d,
    absolute_logits,
    relative_logits,
    resize_abs_table,
    resize_rel_table,
)

SIZES = [(4, 4), (3, 5), (5, 2), (1, 3), (3, 1)]  # square, non-square, odd, degenerate rows/columns


@pytest.mark.parametrize("size", SIZES)
def test_relative_logits_matches_loop_reference(size):
    H, W = size
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, H, W, 5, generator=g, dtype=torch.float64)
    rel_h = torch.randn(2 * H - 1, 5, generator=g, dtype=torch.float64)
    rel_w = torch.randn(2 * W - 1, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(relative_logits(q, rel_h, rel_w), relative_logits_loop(q, rel_h, rel_w))


@pytest.mark.parametrize("size", [(3, 4), (2, 2)])
def test_relative_logits_gradients_match_loop_reference(size):
    H, W = size
    g = torch.Generator().manual_seed(1)
    tensors = [
        torch.randn(1, 2, H, W, 3, generator=g, dtype=torch.float64),
        torch.randn(2 * H - 1, 3, generator=g, dtype=torch.float64),
        torch.randn(2 * W - 1, 3, generator=g, dtype=torch.float64),
    ]
    upstream = torch.randn(1, 2, H * W, H * W, generator=g, dtype=torch.float64)
    grads = []
    for fn in (relative_logits, relative_logits_loop):
        leaves = [t.clone().requires_grad_() for t in tensors]
        (fn(*leaves) * upstream).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for ours, ref in zip(*grads, strict=True):
        torch.testing.assert_close(ours, ref)


def test_relative_logits_official_offset_convention():
    # One-hot tables: logit[(x,y)->(p,s)] must be 1 exactly when the key is one row below the query (p - x = 1).
    H, W, d = 4, 3, 2
    q = torch.zeros(1, 1, H, W, d)
    q[..., 0] = 1.0
    rel_h = torch.zeros(2 * H - 1, d)
    rel_h[H - 1 + 1, 0] = 1.0  # offset +1 in height
    logits = relative_logits(q, rel_h, torch.zeros(2 * W - 1, d))[0, 0]
    for n in range(H * W):
        for m in range(H * W):
            expected = 1.0 if m // W - n // W == 1 else 0.0
            assert logits[n, m].item() == expected


@pytest.mark.parametrize("size", [(3, 3), (2, 4)])
def test_absolute_logits_matches_loop_reference(size):
    H, W = size
    g = torch.Generator().manual_seed(2)
    q = torch.randn(2, 2, H, W, 4, generator=g, dtype=torch.float64)
    abs_h, abs_w = (
        torch.randn(H, 4, generator=g, dtype=torch.float64),
        torch.randn(W, 4, generator=g, dtype=torch.float64),
    )
    torch.testing.assert_close(absolute_logits(q, abs_h, abs_w), absolute_logits_loop(q, abs_h, abs_w))


def test_relative_logits_rejects_wrong_table_shapes():
    q = torch.randn(1, 1, 3, 4, 2)
    with pytest.raises(ValueError, match=r"rel_h \(5, 2\) and rel_w \(7, 2\)"):
        relative_logits(q, torch.randn(5, 2), torch.randn(5, 2))
    with pytest.raises(ValueError, match="B, heads, H, W, d"):
        relative_logits(torch.randn(3, 4, 2), torch.randn(5, 2), torch.randn(7, 2))


# ---------------------------------------------------------------------------------------------------------------
# Resize policies


def _table(length: int, d: int = 3) -> torch.Tensor:
    return torch.randn(2 * length - 1, d, generator=torch.Generator().manual_seed(length), dtype=torch.float64)


@pytest.mark.parametrize("extend", ["clip", "interpolate"])
def test_rel_resize_is_identity_at_reference(extend):
    table = _table(7)
    assert torch.equal(resize_rel_table(table, 7, extend), table)


@pytest.mark.parametrize("extend", ["clip", "interpolate"])
@pytest.mark.parametrize("new", [1, 3, 6])
def test_rel_shrink_keeps_every_offset(extend, new):
    ref = 7
    table, small = _table(ref), resize_rel_table(_table(ref), new, extend)
    assert small.shape == (2 * new - 1, 3)
    for offset in range(-(new - 1), new):
        torch.testing.assert_close(small[new - 1 + offset], table[ref - 1 + offset], rtol=0, atol=0)


def test_rel_extend_clip_uses_edge_rows_beyond_the_table():
    ref, new = 4, 7
    table = _table(ref)
    big = resize_rel_table(table, new, "clip")
    assert big.shape == (2 * new - 1, 3)
    for offset in range(-(new - 1), new):
        clipped = max(-(ref - 1), min(ref - 1, offset))
        torch.testing.assert_close(big[new - 1 + offset], table[ref - 1 + clipped], rtol=0, atol=0)


def test_rel_extend_interpolate_is_linear_with_fixed_centre_and_ends():
    ref, new = 4, 7
    table = _table(ref)
    big = resize_rel_table(table, new, "interpolate")
    old_pos = np.linspace(-1.0, 1.0, 2 * ref - 1)  # offsets scaled to [-1, 1]
    new_pos = np.linspace(-1.0, 1.0, 2 * new - 1)
    for c in range(table.shape[1]):
        expected = np.interp(new_pos, old_pos, table[:, c].numpy())
        np.testing.assert_allclose(big[:, c].numpy(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(big[new - 1], table[ref - 1])  # offset 0 unchanged


def test_abs_resize_identity_at_reference_and_linear_elsewhere():
    table = torch.randn(5, 2, dtype=torch.float64)
    assert torch.equal(resize_abs_table(table, 5), table)  # bit for bit: every sample falls on a row
    big = resize_abs_table(table, 10)
    # align_corners=False: output i samples input coordinate (i + 0.5) * 5 / 10 - 0.5, clamped to the ends.
    coords = np.clip((np.arange(10) + 0.5) * 0.5 - 0.5, 0, 4)
    for c in range(2):
        np.testing.assert_allclose(big[:, c].numpy(), np.interp(coords, np.arange(5), table[:, c].numpy()))


def test_resize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="extend must be one of"):
        resize_rel_table(_table(3), 4, "nearest")
    with pytest.raises(ValueError, match="odd number of rows"):
        resize_rel_table(torch.randn(4, 2), 3)
    with pytest.raises(ValueError, match="length must be >= 1"):
        resize_rel_table(_table(3), 0)


def test_relative_module_smaller_map_means_same_offsets():
    """Logits on a map smaller than the reference use the full table's rows for the same offsets."""
    pos = RelativePosition2d((6, 5), dim_head=4).double()
    q = torch.randn(1, 2, 3, 4, 4, dtype=torch.float64)
    H, W = 3, 4
    rel_h_same = pos.rel_h[6 - 1 - (H - 1) : 6 - 1 + H]  # offsets -(H-1)..H-1 of the full table
    rel_w_same = pos.rel_w[5 - 1 - (W - 1) : 5 - 1 + W]
    torch.testing.assert_close(pos(q), relative_logits_loop(q, rel_h_same, rel_w_same))


@pytest.mark.parametrize("module_cls", [RelativePosition2d, AbsolutePosition2d])
def test_checkpoint_tables_of_other_reference_size_load_with_the_policy(module_cls):
    small, big = module_cls(4, 8), module_cls(6, 8)
    big.load_state_dict(small.state_dict())
    if module_cls is RelativePosition2d:
        torch.testing.assert_close(big.rel_h, resize_rel_table(small.rel_h, 6, "clip"))
        torch.testing.assert_close(big.rel_w[5 - 3 : 5 + 4], small.rel_w)  # central rows are the small table
    else:
        torch.testing.assert_close(big.abs_h, resize_abs_table(small.abs_h, 6))
    big_state = {k: v.clone() for k, v in big.state_dict().items()}
    small.load_state_dict(big_state)  # and back: large -> small
    for name, table in small.state_dict().items():
        if module_cls is RelativePosition2d:
            torch.testing.assert_close(table, big_state[name][2:-2])  # central 7 of 11 rows
        else:
            torch.testing.assert_close(table, resize_abs_table(big_state[name], 4))
