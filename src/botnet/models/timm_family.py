"""timm's ImageNet BoTNet-family networks as presets of our one BoTNet class, and their checkpoints' key map.

timm (``models/byoanet.py``, ``byobnet.py``, ``layers/bottleneck_attn.py``, version 1.0) publishes three ImageNet
checkpoints of BoTNet-style networks, each built for 256x256 only; here they run at any input size. What differs
from the paper's networks is all in :class:`~botnet.models.BoTNetConfig` fields: a tiered 3x3 stem, attention in
chosen blocks, SE after the 3x3 conv or ECA, grouped convs, a 1x1 conv before the head, no activation on the BoT
blocks' projection shortcut.

Converting a timm state dict (:func:`convert_timm_state_dict`) renames the keys with :data:`TIMM_KEY_MAP` and
rescales the relative position tables: timm adds ``q . r`` unscaled to ``(q . k) d^-0.5`` (``scale_pos_embed=False``,
its default and the setting of these checkpoints), whereas our MHSA2d scales q before both terms as the official code
does, so ``r_ours = r_timm * d^0.5`` gives the same logits. timm's ``height_rel`` / ``width_rel`` hold offsets in
the same order as our ``rel_h`` / ``rel_w`` (row ``L-1+o`` is key minus query offset ``o``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .config import BoTNetConfig
from .registry import register_model

if TYPE_CHECKING:  # registering the presets imports no torch (``botnet list`` answers at once)
    from torch import Tensor

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

# timm key prefix -> ours. Block keys first become "layer{stage + 1}.{block}." + the block part.
TIMM_KEY_MAP: tuple[tuple[str, str], ...] = (
    ("stem.conv1.conv.", "conv1.0."),
    ("stem.conv1.bn.", "conv1.1."),
    ("stem.conv2.conv.", "conv1.3."),
    ("stem.conv2.bn.", "conv1.4."),
    ("stem.conv3.conv.", "conv1.6."),
    ("stem.conv3.bn.", "bn1."),
    ("shortcut.conv.", "downsample.0."),
    ("shortcut.bn.", "downsample.1."),
    ("conv1_1x1.conv.", "conv1."),
    ("conv1_1x1.bn.", "bn1."),
    ("conv2_kxk.conv.", "conv2."),
    ("conv2_kxk.bn.", "bn2."),
    ("attn.", "gate."),  # SE (fc1, fc2) or ECA (conv) after the 3x3 conv
    ("self_attn.qkv.", "attn.qkv."),
    ("self_attn.pos_embed.height_rel", "attn.pos.rel_h"),
    ("self_attn.pos_embed.width_rel", "attn.pos.rel_w"),
    ("post_attn.", "bn2."),
    ("conv3_1x1.conv.", "conv3."),
    ("conv3_1x1.bn.", "bn3."),
    ("final_conv.conv.", "final_conv.conv."),
    ("final_conv.bn.", "final_conv.bn."),
    ("head.fc.", "fc."),
)
_STAGE_BLOCK = re.compile(r"^stages\.(\d+)\.(\d+)\.")
_REL_TABLES = (".attn.pos.rel_h", ".attn.pos.rel_w")


def is_timm_state_dict(state: dict[str, Tensor]) -> bool:
    """Whether ``state`` has timm ByobNet key names (``stem.*``, ``stages.*``)."""
    return any(k.startswith(("stem.", "stages.")) for k in state)


def timm_key(key: str) -> str | None:
    """Our name for timm's ``key``, or None when the table has no pattern for it."""
    prefix = ""
    match = _STAGE_BLOCK.match(key)
    if match:
        prefix = f"layer{int(match.group(1)) + 1}.{match.group(2)}."
        key = key[match.end() :]
    for theirs, ours in TIMM_KEY_MAP:
        if key.startswith(theirs) and (bool(prefix) != theirs.startswith(("stem.", "final_conv.", "head."))):
            return prefix + ours + key[len(theirs) :]
    return None


def convert_timm_state_dict(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """A timm state dict of these networks in our names, with the position tables rescaled to our convention.

    Returns:
        The converted dict and timm's keys that no pattern maps (reported as unexpected by the loader).
    """
    out, unmapped = {}, []
    for key, tensor in state.items():
        ours = timm_key(key)
        if ours is None:
            unmapped.append(key)
            continue
        if ours.endswith(_REL_TABLES) and tensor.dim() == 2:
            tensor = tensor * tensor.shape[1] ** 0.5  # timm adds q.r unscaled; ours scales q by d^-0.5 first
        out[ours] = tensor
    return out, unmapped
