"""Layers of the BoTNet paper: MHSA2d, its position encodings, and the residual blocks.

Names are imported on first use; :mod:`.choices` (what a model config may choose) imports no torch.
"""

from .._lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "activations": ("ACTIVATIONS", "get_act_layer"),
        "attention": ("MHSA2d",),
        "blocks": ("EXPANSION", "BoTBlock", "Bottleneck"),
        "choices": ("ACTIVATION_NAMES", "BACKENDS", "EXTEND_MODES", "POS_ENCODINGS"),
        "non_local": ("NonLocal2d",),
        "position": (
            "AbsolutePosition2d",
            "RelativePosition2d",
            "absolute_logits",
            "relative_logits",
            "resize_abs_table",
            "resize_rel_table",
        ),
        "squeeze_excite": ("EfficientChannelAttention", "SqueezeExcite", "make_divisible"),
    },
)
