"""timm's BoTNet-family checkpoints in our key names (the networks themselves: :mod:`botnet.models.timm_family`).

Converting a timm state dict (:func:`convert_timm_state_dict`) renames the keys with :data:`TIMM_KEY_MAP` and
rescales the relative position tables: timm adds ``q . r`` unscaled to ``(q . k) d^-0.5`` (``scale_pos_embed=False``,
its default and the setting of these checkpoints), whereas our MHSA2d scales q before both terms as the official code
does, so ``r_ours = r_timm * d^0.5`` gives the same logits. timm's ``height_rel`` / ``width_rel`` hold offsets in
the same order as our ``rel_h`` / ``rel_w`` (row ``L-1+o`` is key minus query offset ``o``).
"""

from __future__ import annotations

import re

from torch import Tensor

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
