"""attention_maps: the probabilities each MHSA2d layer used, read with hooks, for any backend."""

from __future__ import annotations

import pytest
import torch

import botnet
from botnet.models import attention_layers, attention_maps


@pytest.mark.parametrize("backend", ["math", "chunked", "sdpa"])
def test_maps_sum_to_one_and_reproduce_the_layer_output(backend):
    torch.manual_seed(0)
    model = botnet.create_model("botnet_tiny", num_classes=5, attn_backend=backend, zero_init_last=False).eval()
    x = torch.randn(2, 3, 80, 48)  # c5 map 5x3 with c5 stride 1
    name = "layer4.0.attn"
    assert attention_layers(model) == [name]
    seen = {}
    layer = model.get_submodule(name)
    handle = layer.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], out=out))
    maps = attention_maps(model, x)
    handle.remove()
    probs, size = maps[name]
    B, C, H, W = seen["x"].shape
    assert size == (H, W) == (5, 3) and probs.shape == (2, layer.heads, H * W, H * W)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, layer.heads, H * W))
    # Independently of how the layer computed it: probabilities x values = the layer's output.
    d = C // layer.heads
    v = torch.nn.functional.conv2d(seen["x"], layer.qkv.weight)[:, 2 * C :]  # (B, C, H, W), heads contiguous
    v = v.reshape(B, layer.heads, d, H * W).transpose(-1, -2)  # (B, heads, N, d)
    out = (probs @ v).transpose(-1, -2).reshape(B, C, H, W)
    torch.testing.assert_close(out, seen["out"], rtol=1e-5, atol=1e-5)


def test_unknown_layer_names_list_the_valid_ones():
    model = botnet.create_model("botnet_tiny", num_classes=5)
    with pytest.raises(ValueError, match="valid: layer4.0.attn"):
        attention_maps(model, torch.randn(1, 3, 64, 64), layers=["layer4.1.attn"])
    with pytest.raises(ValueError, match="no MHSA2d"):
        attention_maps(botnet.create_model("resnet50", num_classes=5), torch.randn(1, 3, 64, 64))
