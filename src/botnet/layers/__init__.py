"""Layers of the BoTNet paper: MHSA2d, its position encodings, and the residual blocks."""

from .activations import ACTIVATIONS, get_act_layer
from .attention import BACKENDS, POS_ENCODINGS, MHSA2d
from .blocks import EXPANSION, BoTBlock, Bottleneck
from .non_local import NonLocal2d
from .position import (
    EXTEND_MODES,
    AbsolutePosition2d,
    RelativePosition2d,
    absolute_logits,
    relative_logits,
    resize_abs_table,
    resize_rel_table,
)
from .squeeze_excite import EfficientChannelAttention, SqueezeExcite, make_divisible

__all__ = [
    "ACTIVATIONS",
    "BACKENDS",
    "EXPANSION",
    "EXTEND_MODES",
    "POS_ENCODINGS",
    "AbsolutePosition2d",
    "BoTBlock",
    "Bottleneck",
    "EfficientChannelAttention",
    "MHSA2d",
    "NonLocal2d",
    "RelativePosition2d",
    "SqueezeExcite",
    "absolute_logits",
    "get_act_layer",
    "make_divisible",
    "relative_logits",
    "resize_abs_table",
    "resize_rel_table",
]
