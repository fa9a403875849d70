"""The paper's networks as named configs (the paper's section 3, tables 1, 13 and figure 7).

BoT50..200 are the detection backbones (c5 stride 2). BoTNet-S1-* keep c5 at input/16 (c5 stride 1) and use
SE (ratio 0.0625) with SiLU; the T presets are S1 networks at the paper's input sizes. Each builder is a thin
keyword-only function: ``botnet50(num_classes=10, img_size=512)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import BoTNetConfig
from .registry import create_model, register_model

if TYPE_CHECKING:  # registering the presets imports no torch
    from .botnet import BoTNet

R50, R101, R152, R200 = (3, 4, 6, 3), (3, 4, 23, 3), (3, 8, 36, 3), (3, 24, 36, 3)

RESNET = BoTNetConfig(attn_stages=())
BOTNET = BoTNetConfig(attn_stages=(5,))
BOTNET_S1 = BoTNetConfig(attn_stages=(5,), c5_stride=1, se_ratio=0.0625, act="silu")

for depth, depths in (("50", R50), ("101", R101), ("152", R152), ("200", R200)):
    register_model(f"resnet{depth}", RESNET.replace(depths=depths), f"ResNet-{depth} v1.5 (the paper's baseline)")
    register_model(f"botnet{depth}", BOTNET.replace(depths=depths), f"BoT{depth}: ResNet-{depth} with BoT blocks in c5")

S1_DEPTHS = {"50": R50, "59": (3, 4, 6, 6), "77": (3, 4, 6, 12), "110": (3, 4, 23, 6), "128": (3, 4, 23, 12)}
for depth, depths in S1_DEPTHS.items():
    register_model(f"botnet_s1_{depth}", BOTNET_S1.replace(depths=depths), f"BoTNet-S1-{depth}: c5 stride 1, SE, SiLU")

T_PRESETS = {"t3": ("59", 224), "t4": ("110", 224), "t5": ("128", 256), "t6": ("77", 320), "t7": ("128", 384)}
for t, (depth, size) in T_PRESETS.items():
    cfg = BOTNET_S1.replace(depths=S1_DEPTHS[depth], img_size=size)
    register_model(f"botnet_{t}", cfg, f"BoTNet-{t.upper()}: BoTNet-S1-{depth} at {size}x{size}")

# Small networks for quick experiments and the built-in dataset: the BoT50 design at a fraction of the width/depth.
register_model(
    "botnet_tiny",
    BOTNET.replace(depths=(1, 1, 1, 1), widths=(16, 32, 64, 128), c5_stride=1, img_size=64),
    "small BoTNet (0.4M params, c5 stride 1) for 64 px inputs: the default of botnet train",
)
register_model(
    "botnet26",
    BOTNET.replace(depths=(2, 2, 2, 2), img_size=256),
    "BoT26: 2 blocks per stage, BoT blocks in c5 (a timm botnet26t-sized network)",
)


def resnet50(**overrides: object) -> BoTNet:
    """ResNet-50 v1.5 from this package's code path (the paper's R50 baseline)."""
    return create_model("resnet50", **overrides)


def resnet101(**overrides: object) -> BoTNet:
    return create_model("resnet101", **overrides)


def resnet152(**overrides: object) -> BoTNet:
    return create_model("resnet152", **overrides)


def resnet200(**overrides: object) -> BoTNet:
    return create_model("resnet200", **overrides)


def botnet50(**overrides: object) -> BoTNet:
    """BoT50: R50 with the three c5 blocks as BoT blocks (paper section 4.1)."""
    return create_model("botnet50", **overrides)


def botnet101(**overrides: object) -> BoTNet:
    return create_model("botnet101", **overrides)


def botnet152(**overrides: object) -> BoTNet:
    return create_model("botnet152", **overrides)


def botnet200(**overrides: object) -> BoTNet:
    return create_model("botnet200", **overrides)


def botnet_s1_50(**overrides: object) -> BoTNet:
    return create_model("botnet_s1_50", **overrides)


def botnet_s1_59(**overrides: object) -> BoTNet:
    return create_model("botnet_s1_59", **overrides)


def botnet_s1_77(**overrides: object) -> BoTNet:
    return create_model("botnet_s1_77", **overrides)


def botnet_s1_110(**overrides: object) -> BoTNet:
    return create_model("botnet_s1_110", **overrides)


def botnet_s1_128(**overrides: object) -> BoTNet:
    return create_model("botnet_s1_128", **overrides)


def botnet_tiny(**overrides: object) -> BoTNet:
    """Small BoTNet (0.4M params) for 64 px images; the default model of ``botnet train``."""
    return create_model("botnet_tiny", **overrides)


def botnet26(**overrides: object) -> BoTNet:
    return create_model("botnet26", **overrides)


def botnet_t3(**overrides: object) -> BoTNet:
    """BoTNet-T3 (S1-59 at 224): 33.5M params, 7.3 GFLOPs, 81.7% top-1 in the paper."""
    return create_model("botnet_t3", **overrides)


def botnet_t4(**overrides: object) -> BoTNet:
    return create_model("botnet_t4", **overrides)


def botnet_t5(**overrides: object) -> BoTNet:
    return create_model("botnet_t5", **overrides)


def botnet_t6(**overrides: object) -> BoTNet:
    return create_model("botnet_t6", **overrides)


def botnet_t7(**overrides: object) -> BoTNet:
    """BoTNet-T7 (S1-128 at 384): 75.1M params, 45.8 GFLOPs, 84.7% top-1 in the paper."""
    return create_model("botnet_t7", **overrides)
