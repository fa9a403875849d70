"""timm reference networks with random weights in which no block is near the identity (for conversion tests)."""

from __future__ import annotations

import timm
import torch

TIMM_WITH_WEIGHTS = ("botnet26t_256", "sebotnet33ts_256", "eca_botnext26ts_256")
TIMM_ALL = (*TIMM_WITH_WEIGHTS, "botnet50ts_256")


def random_timm(name: str, seed: int) -> torch.nn.Module:
    """timm's ``name`` with random weights, random BN statistics and affine, large position tables, in eval mode."""
    torch.manual_seed(seed)
    model = timm.create_model(name).eval()
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)  # no zero-initialised last BN: no identity block
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
        for name_, p in model.named_parameters():
            if name_.endswith(("height_rel", "width_rel")):
                p.copy_(torch.randn(p.shape, generator=g))  # position logits that matter next to q.k
            elif name_.startswith("head.fc.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model
