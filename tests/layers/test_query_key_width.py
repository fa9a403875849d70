"""MHSA2d with query/key heads narrower than the value heads (timm's ``eca_botnext26ts`` uses 16)."""

from __future__ import annotations

import pytest
import torch

from botnet.layers import MHSA2d


@pytest.mark.parametrize("backend", ["sdpa", "chunked", "flex"])
def test_backends_agree_with_math(backend):
    torch.manual_seed(0)
    math = MHSA2d(64, heads=4, dim_head_qk=8, ref_size=(6, 5), backend="math")
    other = MHSA2d(64, heads=4, dim_head_qk=8, ref_size=(6, 5), backend=backend)
    other.load_state_dict(math.state_dict())
    assert math.qkv.weight.shape == (2 * 4 * 8 + 64, 64, 1, 1)
    assert math.pos.rel_h.shape == (11, 8)
    x = torch.randn(2, 64, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(other(x), math(x), rtol=1e-5, atol=1e-5)


def test_math_against_an_explicit_loop():
    torch.manual_seed(0)
    layer = MHSA2d(32, heads=2, dim_head_qk=4, ref_size=(3, 4), backend="math")
    x = torch.randn(1, 32, 3, 4)
    qkv = layer.qkv(x)[0]  # (2*2*4 + 32, 3, 4)
    q, k, v = qkv[:8], qkv[8:16], qkv[16:]
    out = torch.zeros(32, 3, 4)
    for h in range(2):
        qh, kh, vh = q[4 * h : 4 * h + 4], k[4 * h : 4 * h + 4], v[16 * h : 16 * h + 16]
        for x0 in range(3):
            for y0 in range(4):
                logits = torch.empty(3, 4)
                for p in range(3):
                    for s in range(4):
                        qs = qh[:, x0, y0] * 4**-0.5
                        rel = layer.pos.rel_h[p - x0 + 2] + layer.pos.rel_w[s - y0 + 3]
                        logits[p, s] = qs @ kh[:, p, s] + qs @ rel
                weights = logits.flatten().softmax(0)
                out[16 * h : 16 * h + 16, x0, y0] = vh.flatten(1) @ weights
    with torch.no_grad():
        torch.testing.assert_close(layer(x)[0], out.detach(), rtol=1e-5, atol=1e-5)
