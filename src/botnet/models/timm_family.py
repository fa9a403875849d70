"""timm's ImageNet BoTNet-family networks as presets of our one BoTNet class.

timm (``models/byoanet.py``, ``byobnet.py``, ``layers/bottleneck_attn.py``, version 1.0) publishes three ImageNet
checkpoints of BoTNet-style networks, each built for 256x256 only; here they run at any input size. What differs
from the paper's networks is all in :class:`~botnet.models.BoTNetConfig` fields: a tiered 3x3 stem, attention in
chosen blocks, SE after the 3x3 conv or ECA, grouped convs, a 1x1 conv before the head, no activation on the BoT
blocks' projection shortcut. Their checkpoints' key map is :mod:`botnet.models.weights.timm`; their published tags
and figures, :mod:`botnet.models.weights.known`.
"""

from __future__ import annotations

from .config import BoTNetConfig
from .registry import register_model

_TIMM_BASE = BoTNetConfig(
    stem="tiered", attn_stages=(5,), attn_shortcut_act=False, se_in_attn=False, img_size=256, zero_init_last=True
)
TIMM_PRESETS: dict[str, tuple[BoTNetConfig, str]] = {
    "botnet26t_256": (
        _TIMM_BASE.replace(depths=(2, 2, 2, 2), attn_blocks=((4, -1),)),
        "timm's BoTNet-26t: tiered stem, BoT blocks in the last block of c4 and all of c5, ReLU",
    ),
    "sebotnet33ts_256": (
        _TIMM_BASE.replace(
            depths=(2, 3, 3, 2),
            out_widths=(256, 512, 1024, 1536),
            attn_blocks=((3, -1), (4, -1)),
            stem_pool=False,
            act="silu",
            se_ratio=1 / 16,
            channel_attn="se_mid",
            final_conv=1280,
        ),
        "timm's SE-BoTNet-33ts: SE conv blocks, BoT blocks last in c3 and c4 and all of c5, SiLU, 1280-d head conv",
    ),
    "eca_botnext26ts_256": (
        _TIMM_BASE.replace(
            depths=(2, 2, 2, 2), attn_blocks=((4, -1),), act="silu", group_width=16, channel_attn="eca", dim_head_qk=16
        ),
        "timm's ECA-BoTNeXt-26ts: grouped 3x3 convs (16 per group), ECA, 16-d query/key heads, SiLU",
    ),
    "botnet50ts_256": (
        _TIMM_BASE.replace(attn_stages=(), attn_blocks=((3, 3), (4, 1), (4, 3), (4, 5), (5, 1)), act="silu"),
        "timm's BoTNet-50ts (no published weights): BoT blocks interleaved in c3..c5, SiLU",
    ),
}
for _name, (_cfg, _description) in TIMM_PRESETS.items():
    register_model(_name, _cfg, _description)
