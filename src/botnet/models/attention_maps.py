"""Where each query attends: the attention probabilities of any MHSA2d layer, read with forward hooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..layers import MHSA2d


class AttentionMap(NamedTuple):
    """Softmax probabilities ``probs`` (B, heads, H*W, H*W) over the keys of an (H, W) = ``size`` feature map."""

    probs: Tensor
    size: tuple[int, int]


def attention_layers(model: nn.Module) -> list[str]:
    """Names of the MHSA2d layers of ``model`` (e.g. ``layer4.0.attn``), in forward order."""
    return [name for name, m in model.named_modules() if isinstance(m, MHSA2d)]


@torch.no_grad()
def attention_maps(model: nn.Module, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, AttentionMap]:
    """Run ``model(x)`` and return the attention probabilities of the named MHSA2d layers (default: all).

    Hooks record each layer's input and recompute its probabilities with the explicit formula (whatever backend the
    layer runs with), so the model is neither edited nor slowed down when this is not called. The model's mode
    (train / eval) is left as it is.

    Raises:
        ValueError: the model has no MHSA2d layer, or a name is not one of them (the message lists the valid ones).
    """
    valid = attention_layers(model)
    if not valid:
        raise ValueError(f"{type(model).__name__} has no MHSA2d attention layer")
    names = valid if layers is None else list(layers)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"no attention layer named {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    modules = dict(model.named_modules())
    maps: dict[str, AttentionMap] = {}

    def hook(name: str):
        def record(module: MHSA2d, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            logits, _ = module.attention_logits(inputs[0])  # (B, heads, H*W, H*W)
            maps[name] = AttentionMap(logits.float().softmax(dim=-1), tuple(inputs[0].shape[-2:]))

        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: maps[n] for n in names if n in maps}
