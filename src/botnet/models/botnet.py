"""One network class for every ResNet and BoTNet of the paper (section 4, tables 1 and 13).

ResNet v1.5: 7x7/2 stem + 3x3/2 max pool, four stages c2..c5 (torchvision's ``layer1..layer4``) of bottleneck
blocks, stride on the 3x3 conv. Stages named in ``cfg.attn_stages`` (and blocks named in ``cfg.attn_blocks``) use BoT
blocks. Child names follow torchvision (``conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc``; a tiered stem is
``conv1`` as a Sequential of its three convs, a head conv is ``final_conv`` before ``avgpool``) and the model API
follows timm. timm's BoTNet-family networks are configs of this class too (``timm_family``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import (
    BoTBlock,
    Bottleneck,
    EfficientChannelAttention,
    MHSA2d,
    NonLocal2d,
    SqueezeExcite,
    get_act_layer,
    make_divisible,
)
from .config import IMAGENET_MEAN, IMAGENET_STD, BoTNetConfig


def _ceil_half(size: tuple[int, int]) -> tuple[int, int]:
    return math.ceil(size[0] / 2), math.ceil(size[1] / 2)


def _stem(cfg: BoTNetConfig, act_layer: type[nn.Module]) -> tuple[nn.Module, dict]:
    """The stem's ``conv1`` (BN and act follow as ``bn1``, ``relu``) and the feature_info entry at reduction 2.

    "7x7": one 7x7/2 conv. "tiered": 3x3/2 -> BN -> act -> 3x3 -> BN -> act -> 3x3 (stride 2 without the max pool)
    with 3/8, 1/2 and 1x the stem width, as timm's tiered stem.
    """
    chs = cfg.widths[0]
    if cfg.stem == "7x7":
        conv = nn.Conv2d(cfg.in_chans, chs, kernel_size=7, stride=2, padding=3, bias=False)
        return conv, dict(num_chs=chs, reduction=2, module="relu")
    c1, c2 = 3 * chs // 8, chs // 2
    conv = nn.Sequential(
        nn.Conv2d(cfg.in_chans, c1, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c1),
        act_layer(inplace=True),
        nn.Conv2d(c1, c2, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c2),
        act_layer(inplace=True),
        nn.Conv2d(c2, chs, kernel_size=3, stride=1 if cfg.stem_pool else 2, padding=1, bias=False),
    )
    # With the pool the stem's output is at reduction 2; without it, the second conv's activation is.
    return conv, dict(num_chs=chs, reduction=2, module="relu") if cfg.stem_pool else dict(
        num_chs=c2, reduction=2, module="conv1.5"
    )


def _gate_layer(cfg: BoTNetConfig) -> Callable[[int], nn.Module] | None:
    """The channel gate after the 3x3 conv of conv blocks ("se_mid" or "eca"), or None."""
    if cfg.channel_attn == "eca":
        return EfficientChannelAttention
    if cfg.channel_attn == "se_mid" and cfg.se_ratio > 0:
        return lambda chs: SqueezeExcite(chs, make_divisible(chs * cfg.se_ratio), nn.ReLU)
    return None


class BoTNet(nn.Module):
    """ResNet / BoTNet built from a :class:`BoTNetConfig`; runs at any input size of at least its total stride.

    The stem activation keeps torchvision's name ``relu`` whatever ``cfg.act`` is.
    """

    def __init__(self, cfg: BoTNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        act_layer = get_act_layer(cfg.act)
        stem_chs = cfg.widths[0]
        self.conv1, stem_feature = _stem(cfg, act_layer)
        self.bn1 = nn.BatchNorm2d(stem_chs)
        self.relu = act_layer(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if cfg.stem_pool else nn.Identity()
        self.feature_info = [stem_feature]

        # Feature-map size at the reference input: only used to size the position tables.
        ref = _ceil_half(_ceil_half(cfg.input_size))
        in_chs, reduction = stem_chs, 4
        for index, (depth, width) in enumerate(zip(cfg.depths, cfg.widths, strict=True)):
            stage = index + 2
            stride = 1 if stage == 2 else (cfg.c5_stride if stage == 5 else 2)
            out_chs = cfg.stage_out(stage)
            blocks = []
            for b in range(depth):
                block_stride = stride if b == 0 else 1
                common = dict(out_chs=out_chs, stride=block_stride, act_layer=act_layer)
                if cfg.attends(stage, b):
                    attn_layer = partial(
                        MHSA2d,
                        heads=cfg.heads,
                        dim_head_qk=cfg.dim_head_qk or None,
                        pos_enc=cfg.pos_enc,
                        content_content=cfg.content_content,
                        content_position=cfg.content_position,
                        ref_size=ref,  # attention runs at the block's input resolution
                        pos_extend=cfg.pos_extend,
                        backend=cfg.attn_backend,
                    )
                    se_ratio = cfg.se_ratio if cfg.se_in_attn else 0.0
                    block = BoTBlock(
                        in_chs,
                        width,
                        attn_layer=attn_layer,
                        se_ratio=se_ratio,
                        shortcut_act=cfg.attn_shortcut_act,
                        **common,
                    )
                else:
                    block = Bottleneck(
                        in_chs,
                        width,
                        groups=width // cfg.group_width if cfg.group_width else 1,
                        se_ratio=cfg.se_ratio if cfg.channel_attn == "se" else 0.0,
                        gate_layer=_gate_layer(cfg),
                        non_local=(stage, b) in cfg.non_local,
                        **common,
                    )
                blocks.append(block)
                if block_stride == 2:
                    ref = _ceil_half(ref)
                in_chs = out_chs
            reduction *= stride
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=in_chs, reduction=reduction, module=f"layer{index + 1}"))

        if cfg.final_conv:  # timm's ``final_conv``: 1x1 conv + BN + act before the pooled head
            self.final_conv = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(in_chs, cfg.final_conv, kernel_size=1, bias=False),
                    bn=nn.BatchNorm2d(cfg.final_conv),
                    act=act_layer(inplace=True),
                )
            )
            in_chs = cfg.final_conv
        else:
            self.final_conv = nn.Identity()
        self.num_features = in_chs
        self.drop_rate = cfg.drop_rate
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_chs, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.pretrained_cfg = dict(
            input_size=(cfg.in_chans, *cfg.input_size),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            crop_pct=0.875,
            interpolation="bilinear",
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")  # He fan-in
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, (MHSA2d, NonLocal2d)):
                m.reset_parameters()  # their own initialisers (qkv N(0, 0.01), tables N(0, d^-0.5), NL gamma 0)
            elif isinstance(m, (Bottleneck, BoTBlock)) and self.cfg.zero_init_last:
                m.zero_init_last()

    # ----------------------------------------------------------------------------------------------------------
    # timm-style API

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one of ``num_classes`` outputs (0: no classifier)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.cfg = self.cfg.replace(num_classes=num_classes)  # saved configs must rebuild this model
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.normal_(self.fc.weight, std=0.01)
            nn.init.zeros_(self.fc.bias)

    def check_input(self, x: Tensor) -> None:
        """Raise a ValueError/TypeError that says what is wrong with ``x``, before any layer sees it."""
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a torch.Tensor of shape (B, {self.cfg.in_chans}, H, W), got {type(x).__name__}")
        if x.dim() != 4:
            hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
            raise ValueError(
                f"expected a 4-D batch (B, {self.cfg.in_chans}, H, W), got a {x.dim()}-D tensor of shape "
                f"{tuple(x.shape)}{hint}"
            )
        if x.shape[1] != self.cfg.in_chans:
            raise ValueError(
                f"expected {self.cfg.in_chans} input channels, got {x.shape[1]} (input shape {tuple(x.shape)}); "
                f"build the model with in_chans={x.shape[1]} for such inputs"
            )
        stride = self.cfg.total_stride
        if x.shape[2] < stride or x.shape[3] < stride:
            raise ValueError(
                f"input {x.shape[2]}x{x.shape[3]} is smaller than the network's total stride {stride}: "
                f"height and width must each be at least {stride}"
            )

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> last feature map (B, num_features, ceil(H/stride), ceil(W/stride))."""
        self.check_input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.final_conv(self.layer4(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Feature map -> logits (or pooled features with ``pre_logits=True``)."""
        x = self.avgpool(x).flatten(1)  # (B, num_features)
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
