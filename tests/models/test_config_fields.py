"""The config fields of timm's BoTNet family: what they build, and the errors of values that make no network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import botnet
from botnet.layers import BoTBlock, Bottleneck, EfficientChannelAttention, SqueezeExcite
from botnet.models import BoTNetConfig, get_config


def test_attn_blocks_pick_blocks_counting_from_either_end():
    cfg = get_config("botnet50ts_256")
    attending = [(s, b) for s in (2, 3, 4, 5) for b in range(cfg.depths[s - 2]) if cfg.attends(s, b)]
    assert attending == [(3, 3), (4, 1), (4, 3), (4, 5), (5, 1)]
    model = botnet.create_model("botnet26t_256")
    kinds = [type(b).__name__ for layer in (model.layer3, model.layer4) for b in layer]
    assert kinds == ["Bottleneck", "BoTBlock", "BoTBlock", "BoTBlock"]


def test_what_the_timm_fields_build():
    model = botnet.create_model("sebotnet33ts_256")
    assert isinstance(model.conv1, nn.Sequential) and isinstance(model.maxpool, nn.Identity)
    assert model.conv1[6].stride == (2, 2) and model.layer4[-1].conv3.out_channels == 1536
    assert model.num_features == 1280 and model.final_conv.conv.out_channels == 1280
    assert isinstance(model.layer1[0].gate, SqueezeExcite) and model.layer1[0].gate.fc1.out_channels == 8
    bot = model.layer4[0]
    assert isinstance(bot, BoTBlock) and isinstance(bot.downsample[2], nn.Identity)  # no act on the shortcut
    eca = botnet.create_model("eca_botnext26ts_256")
    assert isinstance(eca.layer2[0].gate, EfficientChannelAttention) and eca.layer2[0].conv2.groups == 8
    assert eca.layer4[0].attn.dim_head_qk == 16 and eca.layer4[0].attn.dim_head == 128


def test_paper_presets_keep_their_stem_and_blocks():
    model = botnet.create_model("botnet_s1_50")
    assert isinstance(model.conv1, nn.Conv2d) and model.conv1.kernel_size == (7, 7)
    assert all(isinstance(b.gate, nn.Identity) for b in model.layer1 if isinstance(b, Bottleneck))
    assert isinstance(model.final_conv, nn.Identity)


def test_old_saved_configs_rebuild():
    """A config dict written before these fields existed builds the same network."""
    old = {k: v for k, v in get_config("botnet50").to_dict().items() if k in BoTNetConfig.__dataclass_fields__}
    for new_field in ("attn_blocks", "out_widths", "stem", "stem_pool", "group_width", "channel_attn"):
        old.pop(new_field)
    assert BoTNetConfig(**old) == get_config("botnet50")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (dict(stem="deep"), "stem must be one of"),
        (dict(stem_pool=False), "stem_pool=False needs stem='tiered'"),
        (dict(attn_blocks=((4, 6),)), "attn_blocks entries"),
        (dict(attn_blocks=((6, 0),)), "attn_blocks entries"),
        (dict(group_width=48), "group_width"),
        (dict(channel_attn="cbam"), "channel_attn must be one of"),
        (dict(channel_attn="eca"), "se_in_attn=False"),
        (dict(channel_attn="eca", se_in_attn=False, se_ratio=0.1), "leave se_ratio at 0"),
        (dict(out_widths=(256, 512)), "out_widths"),
        (dict(non_local=((5, 0),), attn_stages=(), attn_blocks=((5, 0),)), "attention stage c5"),
    ],
)
def test_invalid_values_say_what_is_allowed(overrides, match):
    with pytest.raises(ValueError, match=match):
        botnet.create_model("botnet50", **overrides)


def test_group_width_with_odd_input():
    model = botnet.create_model("eca_botnext26ts_256", num_classes=3).train()
    out = model(torch.randn(2, 3, 65, 97))
    out.sum().backward()
    assert out.shape == (2, 3) and model.layer1[0].gate.conv.weight.grad is not None
