"""Every MHSA2d backend gives the math backend's numbers: outputs and gradients, all modes, odd sizes."""

from __future__ import annotations

import warnings

import pytest
import torch
from test_attention import MODES, _reference

import botnet
from botnet.layers import BACKENDS, MHSA2d

SIZES = [(6, 6), (5, 7), (7, 4), (1, 1), (9, 3)]
FAST = [b for b in BACKENDS if b not in ("math", "auto", "flex")]  # trainable on CPU; flex: inference only here
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _pair(mode: str, backend: str, dim: int = 32, heads: int = 4) -> tuple[MHSA2d, MHSA2d]:
    torch.manual_seed(0)
    ref = MHSA2d(dim, heads=heads, ref_size=(5, 5), backend="math", **MODES[mode])
    torch.nn.init.normal_(ref.qkv.weight, std=0.3)  # a peaked softmax, not a uniform one
    if ref.pos is not None:
        for p in ref.pos.parameters():
            torch.nn.init.normal_(p, std=0.5)
    other = MHSA2d(dim, heads=heads, ref_size=(5, 5), backend=backend, **MODES[mode])
    other.load_state_dict(ref.state_dict())
    return ref, other


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("backend", FAST)
def test_backend_matches_math_in_outputs_and_gradients(backend, mode, size):
    ref, other = _pair(mode, backend)
    x = torch.randn(2, 32, *size)
    outs, grads = [], []
    for layer in (ref, other):
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        y.backward(torch.linspace(-1, 1, y.numel()).reshape(y.shape))
        outs.append(y.detach())
        grads.append({"input": xi.grad, **{n: p.grad for n, p in layer.named_parameters()}})
    assert (outs[1] - outs[0]).abs().max() <= 1e-5 * max(1.0, outs[0].abs().max())
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():  # within 1e-5 relative to the gradient's size (fp32 sums in another order)
        assert (grads[1][name] - g).abs().max() <= 1e-5 * max(1.0, g.abs().max()), name
    # and both agree with the explicit-loop reference
    assert torch.allclose(outs[1].double(), _reference(other.double(), x.double()), atol=1e-5)


def test_auto_backend_choices():
    layer = MHSA2d(32, heads=4, backend="auto")
    assert layer.resolved_backend(196) == "math"
    assert layer.resolved_backend(1023) == "math"
    assert layer.resolved_backend(1024) == "chunked"
    assert layer.resolved_backend(4096) == "chunked"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer.resolved_backend(4096) == "math"  # bf16 math is faster than bf16 chunked
    position_only = MHSA2d(32, heads=4, content_content=False, backend="sdpa")
    assert position_only.resolved_backend(196) == "math"  # SDPA always adds q k^T
    with pytest.raises(ValueError, match="backend must be one of"):
        MHSA2d(32, backend="fast")


def test_inference_backends_agree_without_grad():
    ref, other = _pair("qk+qr_rel", "chunked")
    x = torch.randn(1, 32, 33, 33)  # >= 1024 positions: "auto" would pick chunked here
    with torch.no_grad():
        assert (ref(x) - other(x)).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", ["math", "sdpa", "chunked"])
def test_model_backend_from_config_and_bf16_autocast(backend):
    torch.manual_seed(0)
    ref = botnet.create_model("botnet_tiny", num_classes=5, zero_init_last=False, attn_backend="math").eval()
    model = botnet.create_model("botnet_tiny", num_classes=5, zero_init_last=False, attn_backend=backend).eval()
    model.load_state_dict(ref.state_dict())
    assert all(m.backend == backend for m in model.modules() if isinstance(m, MHSA2d))
    x = torch.randn(2, 3, 72, 56)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= 1e-5
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert torch.isfinite(low).all()
    assert (low.float() - ref(x)).abs().max() <= 0.1 * ref(x).abs().max()
    with pytest.raises(ValueError, match="attn_backend must be one of"):
        botnet.create_model("botnet_tiny", attn_backend="flash")


@pytest.fixture
def eager_flex(monkeypatch):
    """FlexAttention without torch.compile (same maths, no compile time): for numerics over many shapes."""
    from torch.nn.attention.flex_attention import flex_attention

    import botnet.layers.attention as attention

    monkeypatch.setattr(attention, "flex_attention_kernel", lambda: flex_attention)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        yield


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", list(MODES))
def test_flex_matches_math_in_inference(eager_flex, mode, size):
    ref, flex = _pair(mode, "flex")
    x = torch.randn(2, 32, *size)
    with torch.no_grad():
        expected, got = ref(x), flex(x)
    assert (got - expected).abs().max() <= 1e-5 * max(1.0, expected.abs().max())


def test_compiled_flex_kernel_matches_math():
    ref, flex = _pair("qk+qr_rel", "flex")
    x = torch.randn(2, 32, 5, 7)
    with torch.no_grad():
        assert (flex(x) - ref(x)).abs().max() <= 1e-5 * max(1.0, ref(x).abs().max())


def test_flex_refuses_cpu_training_with_a_clear_error():
    _, flex = _pair("qk+qr_rel", "flex")
    with pytest.raises(RuntimeError, match="cannot train on CPU"):
        flex(torch.randn(1, 32, 4, 4))


@CUDA
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("backend", ["sdpa", "chunked", "flex"])
def test_cuda_backends_match_math_in_outputs_and_gradients(backend, mode):
    ref, other = (m.cuda() for m in _pair(mode, backend))
    x = torch.randn(2, 32, 9, 7, device="cuda")
    outs, grads = [], []
    for layer in (ref, other):
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        y.backward(torch.linspace(-1, 1, y.numel(), device="cuda").reshape(y.shape))
        outs.append(y.detach())
        grads.append({"input": xi.grad, **{n: p.grad for n, p in layer.named_parameters()}})
    assert (outs[1] - outs[0]).abs().max() <= 1e-5 * max(1.0, outs[0].abs().max())
    for name, g in grads[0].items():
        assert (grads[1][name] - g).abs().max() <= 1e-5 * max(1.0, g.abs().max()), name
