"""Activation lookup by name, so model configs stay plain data."""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU}


def get_act_layer(name: str) -> type[nn.Module]:
    """The activation class for ``name`` ("relu" for BoT50-style nets, "silu" for the S1/T family)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None
