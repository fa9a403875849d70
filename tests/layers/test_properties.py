"""Property-based tests (hypothesis): MHSA2d and the model zoo over random sizes, heads, widths, position modes and
backends, against the explicit-loop reference. Every case gives the reference's numbers or a clear ValueError;
never a crash inside torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import MODES, mhsa_loop

import botnet
from botnet.layers import MHSA2d


def profile(max_examples: int) -> settings:
    """Reproducible runs (a fixed seed, no example database), no per-example deadline: the loops are slow."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


# Independent position-table rules, written from their definitions (module docstring of botnet.layers.position).


def _interp_rows(table: torch.Tensor, coords: np.ndarray) -> torch.Tensor:
    """Rows of ``table`` linearly interpolated at fractional row coordinates."""
    table = table.detach()
    cols = [np.interp(coords, np.arange(len(table)), table[:, j].numpy()) for j in range(table.shape[1])]
    return torch.from_numpy(np.stack(cols, axis=1)).to(table.dtype)


def relative_table(table: torch.Tensor, length: int, extend: str) -> torch.Tensor:
    ref = (len(table) + 1) // 2
    if length <= ref or extend == "clip":  # offset o keeps its row; beyond the table, the edge row
        return torch.stack([table[min(max(o, -(ref - 1)), ref - 1) + ref - 1] for o in range(-(length - 1), length)])
    # "interpolate": stretch so that offsets 0 and +-(L-1) land on the table's centre and ends
    return _interp_rows(table, np.arange(2 * length - 1) * (2 * ref - 2) / (2 * length - 2))


def absolute_table(table: torch.Tensor, length: int) -> torch.Tensor:
    ref = len(table)
    return _interp_rows(table, np.clip((np.arange(length) + 0.5) * ref / length - 0.5, 0, ref - 1))


def reference_attention(layer: MHSA2d, x: torch.Tensor) -> torch.Tensor:
    """The layer's output from the explicit loops, with tables resized by the rules above."""
    H, W = x.shape[-2:]
    kwargs = {}
    if layer.pos_enc == "relative":
        extend = layer.pos.extend
        kwargs["rel"] = relative_table(layer.pos.rel_h, H, extend), relative_table(layer.pos.rel_w, W, extend)
    elif layer.pos_enc == "absolute":
        kwargs["absolute"] = absolute_table(layer.pos.abs_h, H), absolute_table(layer.pos.abs_w, W)
    return mhsa_loop(x, layer.qkv.weight, layer.heads, content_content=layer.content_content, **kwargs)


@profile(80)
@given(
    heads=st.integers(1, 4),
    dim_head=st.integers(1, 5),
    size=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    ref=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    mode=st.sampled_from(list(MODES)),
    extend=st.sampled_from(["clip", "interpolate"]),
    backend=st.sampled_from(["math", "sdpa", "chunked"]),
    batch=st.integers(1, 2),
    channel_error=st.integers(-2, 2).filter(lambda e: e != 0) | st.just(0),
)
def test_mhsa2d_matches_the_loop_reference_or_says_why_not(
    heads, dim_head, size, ref, mode, extend, backend, batch, channel_error
):
    dim = heads * dim_head
    torch.manual_seed(heads * 100 + dim_head)
    layer = MHSA2d(dim, heads=heads, ref_size=ref, pos_extend=extend, backend=backend, **MODES[mode]).double()
    torch.nn.init.normal_(layer.qkv.weight, std=0.5)  # far from uniform attention
    for p in layer.pos.parameters() if layer.pos is not None else ():
        torch.nn.init.normal_(p, std=0.5)
    channels = dim + channel_error
    if channels < 1:
        return
    x = torch.randn(batch, channels, *size, dtype=torch.float64, requires_grad=True)
    if channels != dim:
        with pytest.raises(ValueError, match=rf"MHSA2d\(dim={dim}\) expects a \(B, {dim}, H, W\) tensor"):
            layer(x)
        return
    out = layer(x)
    torch.testing.assert_close(out, reference_attention(layer, x), rtol=1e-7, atol=1e-9)
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
    (ref_grad,) = torch.autograd.grad(reference_attention(layer, x), x, torch.ones_like(out))
    torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-9)


@profile(12)
@given(heads=st.integers(1, 6), dim=st.integers(1, 12))
def test_mhsa2d_rejects_heads_that_do_not_divide_the_width(heads, dim):
    if dim % heads == 0:
        assert MHSA2d(dim, heads=heads).dim_head == dim // heads
    else:
        with pytest.raises(ValueError, match=f"dim={dim} is not divisible by heads={heads}"):
            MHSA2d(dim, heads=heads)


ZOO = ["botnet_tiny", "botnet50", "botnet_s1_50", "botnet_t3", "resnet50"]


@profile(25)
@given(
    name=st.sampled_from(ZOO),
    size=st.tuples(st.integers(8, 100), st.integers(8, 100)),
    img_size=st.sampled_from([64, 96, 224]),
    mode=st.sampled_from(list(MODES)),
    heads=st.sampled_from([1, 2, 4]),
)
def test_zoo_models_match_the_reference_at_any_size_or_say_why_not(name, size, img_size, mode, heads):
    """Each attention layer's output inside the network equals the loop reference on the same input, the logits
    are finite and of the right shape; an input below the total stride is refused with its size."""
    attention = name != "resnet50"
    overrides = dict(img_size=img_size, num_classes=7)
    if attention:
        overrides.update(heads=heads, **MODES[mode])
    torch.manual_seed(0)
    model = botnet.create_model(name, **overrides).double().eval()
    stride = model.cfg.total_stride
    x = torch.randn(1, 3, *size, dtype=torch.float64)
    if min(size) < stride:
        with pytest.raises(ValueError, match=f"smaller than the network's total stride {stride}"):
            model(x)
        return
    checked = []

    def compare(layer, inputs, output):
        torch.testing.assert_close(output, reference_attention(layer, inputs[0]), rtol=1e-7, atol=1e-9)
        checked.append(tuple(inputs[0].shape[-2:]))

    hooks = [m.register_forward_hook(compare) for m in model.modules() if isinstance(m, MHSA2d)]
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    assert logits.shape == (1, 7) and torch.isfinite(logits).all()
    assert bool(checked) == attention
