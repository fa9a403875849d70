"""Parameter and multiply-add counts, with the paper's conventions (its section 3).

Multiply-adds come from torch's own FLOP counter (``torch.utils.flop_counter``), which counts convolutions and
matrix products (linear layers, q/k/v, both attention matmuls and the relative-logit matmuls) and not BN,
activations or pools: the paper's convention. It reports FLOPs = 2 x multiply-adds.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

CONVENTIONS = ("numel", "paper")


def count_params(model: nn.Module, *, convention: str = "numel") -> int:
    """Number of parameters.

    Args:
        convention: "numel" (every parameter) or "paper" (conv and linear weights only: no BN, no biases, no
            position tables; the convention of the paper's tables).
    """
    if convention == "numel":
        return sum(p.numel() for p in model.parameters())
    if convention == "paper":
        return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def count_macs(model: nn.Module, input_size: tuple[int, int], *, in_chans: int = 3, batch: int = 1) -> int:
    """Multiply-adds of one forward pass at ``input_size`` (H, W), in eval mode.

    Runs on the model's device; a model built under ``torch.device("meta")`` is counted without any arithmetic.
    """
    param = next(model.parameters())
    x = torch.zeros(batch, in_chans, *input_size, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
