"""The whole network under channels_last, bf16 autocast and torch.compile: same numbers as plain fp32 eager."""

from __future__ import annotations

import pytest
import torch

import botnet


def _model(name: str = "botnet_tiny", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return botnet.create_model(name, num_classes=7, zero_init_last=False, **kw)


@pytest.mark.parametrize("backend", ["math", "chunked"])
def test_channels_last_matches_contiguous_in_outputs_and_gradients(backend):
    ref = _model(attn_backend=backend)
    other = _model(attn_backend=backend).to(memory_format=torch.channels_last)
    other.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 72, 56)
    outs = []
    for model, inp in ((ref, x), (other, x.contiguous(memory_format=torch.channels_last))):
        out = model(inp)
        out.square().sum().backward()
        outs.append(out.detach())
    assert (outs[1] - outs[0]).abs().max() <= 1e-4 * max(1.0, outs[0].abs().max())
    for (name, a), (_, b) in zip(ref.named_parameters(), other.named_parameters(), strict=True):
        assert (b.grad - a.grad).abs().max() <= 1e-4 * max(1.0, a.grad.abs().max()), name


@pytest.mark.parametrize("backend", ["math", "sdpa", "chunked"])
def test_bf16_autocast_trains_and_stays_close_to_fp32(backend):
    model = _model(attn_backend=backend)
    x = torch.randn(4, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x)  # training mode: batch statistics
    low.float().square().sum().backward()
    assert torch.isfinite(low).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        exact = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x).float()
    assert (low - exact).abs().max() <= 5e-2 * exact.abs().max()  # bf16 keeps ~3 significant digits per op


def test_torch_compile_traces_the_whole_network_at_two_sizes():
    model = _model("botnet_tiny").eval()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)  # graph capture, no code generation
    with torch.no_grad():
        for size in ((64, 64), (48, 80)):
            x = torch.randn(2, 3, *size)
            assert (compiled(x) - model(x)).abs().max() <= 1e-5


@pytest.mark.slow
def test_torch_compile_inductor_matches_eager_in_training():
    model = _model("botnet_tiny")
    compiled = torch.compile(model)
    x = torch.randn(2, 3, 64, 64)
    ref = model(x)
    out = compiled(x)
    assert (out - ref).abs().max() <= 1e-4 * max(1.0, ref.abs().max())
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
