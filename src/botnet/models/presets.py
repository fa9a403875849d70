"""The paper's networks as named configs (the paper's section 3, tables 1, 13 and figure 7).

BoT50..200 are the detection backbones (c5 stride 2). BoTNet-S1-* keep c5 at input/16 (c5 stride 1) and use
SE (ratio 0.0625) with SiLU; the T presets are S1 networks at the paper's input sizes. Each preset has a builder,
generated from its registration: ``botnet50(num_classes=10, img_size=512)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .config import BoTNetConfig
from .registry import describe_model, register_model

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


PRESETS = (
    *(f"{kind}{depth}" for kind in ("resnet", "botnet") for depth in ("50", "101", "152", "200")),
    *(f"botnet_s1_{depth}" for depth in S1_DEPTHS),
    "botnet_tiny",
    "botnet26",
    *(f"botnet_{t}" for t in T_PRESETS),
)


def _preset_builder(name: str) -> Callable[..., BoTNet]:
    def build(**overrides: object) -> BoTNet:
        from .factory import create_model  # imports torch: registering the presets does not (``botnet list``)

        return create_model(name, **overrides)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{describe_model(name)} (keyword overrides: any BoTNetConfig field, ``num_classes``, ...)."
    return build


BUILDERS: dict[str, Callable[..., BoTNet]] = {name: _preset_builder(name) for name in PRESETS}


def __getattr__(name: str) -> Callable[..., BoTNet]:
    """A preset's builder as an attribute of this module: ``botnet50(num_classes=10, img_size=512)``."""
    if name in BUILDERS:
        return BUILDERS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
